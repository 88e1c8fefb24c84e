"""`phphost import`: read a running (or configured) Apache with mod_php and write a
phphost spec that serves the same names, docroots, ports and TLS certificates with
PHP where it runs today, plus the list of what cannot be carried over (docs/migrate.md).

Layer: beside `check` (it reuses audit's Apache config reader). `source.py` and
`tree.py` read the host (commands with argv lists, files, bounded walks by
descriptor) and change nothing; everything else is pure and unit-tested from
fixture trees."""
