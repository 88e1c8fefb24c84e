"""The FPM master launcher and the jails' sendmail: stdlib only, importing nothing from
phphost (launch.py is installed as a single file, layout.LAUNCHER)."""
