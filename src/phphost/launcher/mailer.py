"""The jail's sendmail: a small C program (sendmail.c beside this file) that hands a
message to the SMTP server in JailSpec.smtp. Pure helpers plus the gcc build.

Why not msmtp: its closure (GnuTLS, libgsasl, libsecret/GLib, p11-kit modules) is large,
it looks up the user's home when HOME is unset, and it does not solve PHP's
`/bin/sh -c sendmail_path`; the C program links only libc and doubles as a mail-only
/bin/sh for jails without the shell feature.

Building it on the host is host.sendmail's (`python -m phphost.host.sendmail build`);
this module imports nothing from phphost.
"""

from __future__ import annotations

from importlib import resources

JAIL_SENDMAIL = "/usr/sbin/sendmail"                          # inside a jail
JAIL_CONF = "/etc/phphost-sendmail.conf"                      # inside a jail
SENDMAIL_PATH = f"{JAIL_SENDMAIL} -t -i"   # php_admin_value[sendmail_path]

CFLAGS = (
    "-O2", "-Wall", "-Wextra", "-Werror", "-D_FORTIFY_SOURCE=2", "-fstack-protector-strong",
    "-fPIE", "-pie", "-Wl,-z,relro,-z,now",
)


def source_path() -> str:
    return str(resources.files("phphost.launcher").joinpath("sendmail.c"))


def build_argv(dest: str, source: str | None = None, cc: str = "gcc") -> list[str]:
    """Pure: the compiler command line."""
    return [cc, *CFLAGS, "-o", dest, source or source_path()]


def split_server(server: str) -> tuple[str, int]:
    """Pure: "host:port" or "[v6]:port" -> (host, port)."""
    host, sep, port = server.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise ValueError(f"{server!r} is not host:port")
    return host.strip("[]"), int(port)


def render_sendmail_conf(server: str, sender: str, helo: str) -> str:
    """Pure: the mailer's config file inside the jail."""
    split_server(server)
    for key, value in (("server", server), ("sender", sender), ("helo", helo)):
        if not value or any(c.isspace() or not c.isprintable() for c in value):
            raise ValueError(f"sendmail {key} {value!r} must be one printable word")
    return (f"# phphost: jail mailer (man: src/phphost/launcher/sendmail.c)\n"
            f"server {server}\nsender {sender}\nhelo {helo}\n")
