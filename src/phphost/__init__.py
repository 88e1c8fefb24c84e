"""phphost: one declarative spec -> a multi-tenant Apache + PHP-FPM host."""

__version__ = "0.1.0"
