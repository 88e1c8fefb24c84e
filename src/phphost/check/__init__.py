"""`phphost check`: exercise every pool's declared jail features for real, from inside
the pool, and prove that undeclared ones are absent."""
