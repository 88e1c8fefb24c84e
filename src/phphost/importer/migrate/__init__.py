"""`phphost migrate SPEC --to STAGE`: seed 002's staged move from mod_php to phphost
(docs/migrate.md, section 2). stages.py names the stages, state.py keeps where the
host is, urlcheck.py compares what visitors see, render.py writes the overlay conf
and the web user's FPM master (pure), oldserver.py acts on the old Apache, run.py
walks from one stage to another."""
