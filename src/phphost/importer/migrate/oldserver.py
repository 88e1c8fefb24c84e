"""The old Apache, acted on without rewriting the admin's files: phphost's overlay in
its conf-enabled/, module links in its mods-enabled/ (the Debian way), each change
checked with `apache2 -t` first and taken in with a graceful restart (stage 4, which
switches the MPM: a full one, stop and start). The web user's FPM master under
phphost's supervisord (stage 5: one master per pool). Every file written is root's
own, in root-only directories (files.atomic_write refuses any other); nothing here touches
a docroot."""

from __future__ import annotations

import os
import re
import secrets
import stat
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from phphost import files, layout, safefs
from phphost.audit import apacheconf
from phphost.errors import FastCGIError, HostError, PlanError
from phphost.fastcgi.status import fpm_ping, fpm_status
from phphost.host import services, supervisord
from phphost.importer import tree
from phphost.importer.migrate import modules, render
from phphost.importer.migrate.urlcheck import LOG_TAIL, Url, fetch, logged_paths
from phphost.importer.run import PHP_NAMES, web_user
from phphost.importer.scope import ServerLines
from phphost.importer.sitephp import effective_override
from phphost.importer.source import ApacheSource, apache_env, find_config, read_apache
from phphost.importer.translate import global_lines
from phphost.importer.vhosts import drafts
from phphost.runner import run
from phphost.spec.model import Model

PROXY_MODULES = (("proxy", "proxy_module"), ("proxy_fcgi", "proxy_fcgi_module"))
RELOAD_WAIT = 30.0


@dataclass(frozen=True)
class OldServer:
    root: str
    config: str
    source: ApacheSource

    @property
    def overlay(self) -> str:
        return os.path.join(self.root, "conf-enabled", render.OVERLAY_NAME)

    def apache(self, *args: str, check: bool = True) -> str:
        proc = run([layout.APACHE_BINARY, "-d", self.root, "-f", self.config, *args],
                   check=False, timeout=120, env=apache_env(self.root))
        if check and proc.returncode != 0:
            raise HostError(f"apache2 -d {self.root} {' '.join(args)} failed: "
                            f"{(proc.stderr + proc.stdout).strip()[-1500:]}")
        return proc.stdout + proc.stderr


def open_server(root: str) -> OldServer:
    root = os.path.realpath(root)
    return OldServer(root, find_config(root), read_apache(root))


def check_layout(server: OldServer) -> None:
    """conf-enabled/ and mods-available/ as Debian lays them out, or a clear refusal."""
    for sub in ("conf-enabled", "mods-enabled", "mods-available"):
        if not os.path.isdir(os.path.join(server.root, sub)):
            raise PlanError(f"{server.root}/{sub}: missing. migrate adds its own conf file to "
                            "conf-enabled/ and enables modules by links in mods-enabled/ (the "
                            "Debian layout, IncludeOptional'd by apache2.conf); nothing was "
                            "changed")


def check_spec(model: Model, server: OldServer) -> None:
    """Every site of the spec is a name the old Apache serves, with its docroot."""
    names = {r.name for r in server.source.refs} | {
        a for r in server.source.refs for a in r.aliases}
    missing = [s.name for s in model.sites if s.server_name not in names]
    if missing:
        raise PlanError(f"{model.source}: site(s) {', '.join(missing)} name(s) no vhost of "
                        f"{server.config} serves (apache2 -S). migrate takes the spec "
                        "`phphost import` wrote for this Apache; import again or pass "
                        "--apache-root. Nothing was changed")
    gone = [s.name for s in model.sites if s.docroot and not os.path.isdir(s.docroot)]
    if gone:
        raise PlanError(f"{model.source}: the docroot of site(s) {', '.join(gone)} does not "
                        "exist on this host. Nothing was changed")


def access_logs(server: OldServer) -> dict[str, list[str]]:
    """Server name -> the paths its access log shows (urlcheck.logged_paths): the
    vhost's own CustomLog files, else the server-wide ones; piped logs skipped."""
    everywhere = [d for d in server.source.directives if d.name == "customlog" and d.args
                  and not d.section("virtualhost")]
    out: dict[str, list[str]] = {}
    for draft in drafts(server.source):
        own = [d for v in draft.vhosts for d in v.directives if d.name == "customlog" and d.args]
        paths = [_log_path(server, d.args[0]) for d in own or everywhere]
        text = "".join(_tail(p) for p in paths if p is not None)
        out[draft.server_name] = logged_paths(text)
    return out


def _log_path(server: OldServer, arg: str) -> str | None:
    if arg.startswith("|"):
        return None
    return arg if arg.startswith("/") else os.path.join(server.source.server_root, arg)


def _tail(path: str) -> str:
    """The last LOG_TAIL bytes of a log, opened by descriptor without following an
    untrusted symlink (safefs); "" when it is missing, unsafe or not a file."""
    try:
        with safefs.parent(path) as (pfd, name, _trusted):
            fd = safefs.open_at(pfd, name, path)
    except (OSError, safefs.UnsafePath):
        return ""
    if fd is None:
        return ""
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            return ""
        os.lseek(fd, max(0, st.st_size - LOG_TAIL), os.SEEK_SET)
        return os.read(fd, LOG_TAIL).decode("utf-8", "replace")
    finally:
        os.close(fd)


def write_overlay(server: OldServer, text: str | None) -> None:
    if text is None:
        files.remove(server.overlay)
    else:
        files.atomic_write(server.overlay, text, mode=0o644)


def enable_modules(server: OldServer) -> list[str]:
    """Links for mod_proxy and mod_proxy_fcgi unless Apache loads them already: the
    links made (to be removed on the way back)."""
    made = []
    for name, module in PROXY_MODULES:
        link = os.path.join(server.root, "mods-enabled", f"{name}.load")
        if module in server.source.modules or os.path.lexists(link):
            continue
        if not os.path.isfile(os.path.join(server.root, "mods-available", f"{name}.load")):
            raise PlanError(f"{server.root}/mods-available/{name}.load: missing; install "
                            "apache2 (it ships mod_proxy_fcgi) or enable it yourself")
        files.atomic_symlink(link, f"../mods-available/{name}.load")
        made.append(link)
    return made


def disable_modules(links: tuple[str, ...]) -> None:
    for link in links:
        if os.path.islink(link):
            files.remove(link)


def relink(links: tuple[str, ...]) -> None:
    """Put back links disable_modules removed."""
    for link in links:
        files.atomic_symlink(link, f"../mods-available/{os.path.basename(link)}")


def configtest(server: OldServer) -> str | None:
    """None when apache2 -t accepts the config and reads the overlay; else why not."""
    syntax = run([layout.APACHE_BINARY, "-d", server.root, "-f", server.config, "-t"],
                 check=False, timeout=120, env=apache_env(server.root))
    if syntax.returncode != 0:
        return (syntax.stderr + syntax.stdout).strip()[-1500:]
    if os.path.exists(server.overlay) and \
            server.overlay not in server.apache("-t", "-D", "DUMP_INCLUDES", check=False):
        return (f"{server.config} does not include {server.overlay} (add "
                "`IncludeOptional conf-enabled/*.conf`, as Debian's apache2.conf has)")
    return None


def graceful(server: OldServer, probe: Url | None, loaded: bool) -> None:
    """Graceful restart, then wait until the probe URL shows the new config is in
    (403 while the overlay is loaded, anything else once it is gone)."""
    server.apache("-k", "graceful")
    if probe is None:
        time.sleep(2)
        return
    deadline = time.monotonic() + RELOAD_WAIT
    while time.monotonic() < deadline:
        status = fetch(probe, []).status
        if status != 0 and (status == 403) == loaded:
            return
        time.sleep(0.3)
    raise HostError(f"{server.config}: apache2 did not take the new configuration in within "
                    f"{RELOAD_WAIT:.0f}s (graceful restart); see its error log")


def new_probe() -> str:
    return secrets.token_hex(8)


# --- the web user's FPM (stage 2) ----------------------------------------------------------

def phphost_dirs() -> None:
    """What the web user's masters need of phphost's own places on a host phphost has
    never applied to: its run and log directories (root's, as apply makes them) and a
    running supervisord."""
    for path, mode in ((layout.RUN_DIR, 0o755), (layout.LOG_DIR, 0o750)):
        if not os.path.isdir(path):
            os.makedirs(path, mode=mode, exist_ok=True)
    services.ensure_supervisord()


def fpm_up(model: Model, user: str) -> None:
    phphost_dirs()
    files.atomic_write(render.FPM_CONF, render.render_fpm(model, user, user), mode=0o644)
    test = run([*render.fpm_argv(model), "-t"], check=False)
    if test.returncode != 0:
        files.remove(render.FPM_CONF)
        raise HostError(f"php-fpm -t rejects {render.FPM_CONF}: "
                        f"{(test.stderr + test.stdout).strip()[-1500:]}")
    files.atomic_write(render.SUPERVISOR_CONF, render.render_program(model), mode=0o644)
    supervisord.update([render.PROGRAM], 20)
    supervisord.start([render.PROGRAM])
    supervisord.wait_state([render.PROGRAM], {"RUNNING"}, "start", 30)
    wait_answers({render.socket(p): render.FPM_LOG for p in render.php_pools(model)})


def fpm_down() -> None:
    files.remove(render.SUPERVISOR_CONF)
    supervisord.update([render.PROGRAM], 20)
    files.remove(render.FPM_CONF)


ANSWER_WAIT = 15.0


def wait_answers(sockets: dict[str, str]) -> None:
    """Until every pool socket answers FPM's ping page with "pong" (a FastCGI request
    through the socket Apache will use; the answer read up to fastcgi's PING_LIMIT, as
    anything from a pool), or HostError naming those that do not and their logs
    (ANSWER_WAIT s, and 20 ms more per socket)."""
    pending = dict(sockets)
    deadline = time.monotonic() + ANSWER_WAIT + len(sockets) / 50
    while pending:
        pending = {sock: log for sock, log in pending.items()
                   if not fpm_ping(sock, render.PING, timeout=2.0)}
        if not pending:
            return
        if time.monotonic() > deadline:
            shown = ", ".join(f"{sock} (see {log})" for sock, log in sorted(pending.items())[:5])
            raise HostError(f"{len(pending)} FPM socket(s) did not answer within "
                            f"{ANSWER_WAIT:.0f}s: {shown}")
        time.sleep(0.2)


QUIET = 1.0
DRAIN_WAIT = 30.0


def drain(sockets: list[str]) -> None:
    """Before a master Apache no longer uses is stopped: until no request but migrate's
    own status requests has reached its sockets for QUIET s (the old children a
    graceful restart lets finish are done with it), at most DRAIN_WAIT s. A socket that
    does not answer counts as quiet; the stop that follows is SIGQUIT anyway (a worker
    in a request finishes it)."""
    seen: dict[str, int] = {}
    quiet_since = time.monotonic()
    deadline = quiet_since + DRAIN_WAIT
    while time.monotonic() < deadline:
        busy = False
        for sock in sockets:
            try:
                status = fpm_status(sock, render.STATUS, timeout=2.0)
            except FastCGIError:
                continue
            before = seen.get(sock)
            seen[sock] = status.accepted_conn
            busy |= before is None or status.accepted_conn > before + 1 or \
                status.active_processes > 1
        now = time.monotonic()
        if busy:
            quiet_since = now
        elif now - quiet_since >= QUIET:
            return
        time.sleep(0.25)


# --- stage 5: one master per pool ------------------------------------------------------------

TESTS_AT_ONCE = 8
SPLIT_DIRS = (f"{layout.ETC}/migrate/pools/", f"{layout.SUPERVISOR_CONF_DIR}/{render.SPLIT_PREFIX}")


def split_up(model: Model, user: str, pools: list[str]) -> None:
    """One master per pool as the web user: every file rendered first (a value that cannot
    be written is a PlanError before anything is), each config checked with `php-fpm -t`,
    the programs added to supervisord together and started, then every socket asked
    until it answers. Raises with the files left for split_down to remove."""
    try:
        texts = [(p, render.render_split_fpm(model, p, user, user),
                  render.render_split_program(model, p)) for p in pools]
    except ValueError as err:
        raise PlanError(f"{model.source}: stage 5 (pools): {err}. Nothing was changed") from err
    phphost_dirs()
    for pool, conf, _program in texts:
        files.atomic_write(render.split_conf(pool), conf, mode=0o644)
    with ThreadPoolExecutor(max_workers=TESTS_AT_ONCE) as workers:     # 46 ms each
        tests = list(workers.map(
            lambda p: (p, run([*render.split_argv(model, p), "-t"], check=False)), pools))
    for pool, test in tests:
        if test.returncode != 0:
            raise HostError(f"php-fpm -t rejects {render.split_conf(pool)}: "
                            f"{(test.stderr + test.stdout).strip()[-1500:]}")
    for pool, _conf, program in texts:
        files.atomic_write(render.split_supervisor_conf(pool), program, mode=0o644)
    programs = [render.split_program(p) for p in pools]
    supervisord.update(programs, 20)
    supervisord.start(programs)
    supervisord.wait_state(programs, {"RUNNING"}, "start", 30 + len(programs) / 10)
    wait_answers({render.split_socket(p): render.split_log(p) for p in pools})


def split_down(programs: tuple[str, ...], written: tuple[str, ...]) -> None:
    """The per-pool masters the record names stopped and removed from supervisord, the
    files it names deleted (only where stage 5 writes: the record is root's, but a
    path elsewhere is never removed on its word)."""
    ours = [f for f in written if f.startswith(SPLIT_DIRS) and "/../" not in f
            and f not in (render.SUPERVISOR_CONF, render.FPM_CONF)]
    for path in ours:
        if path.endswith(".conf") and path.startswith(layout.SUPERVISOR_CONF_DIR + "/"):
            files.remove(path)
    supervisord.update(list(programs), 20)
    supervisord.stop(list(programs), 20)
    for path in ours:
        files.remove(path)


# --- stage 4: mod_php off, prefork -> event, a full restart --------------------------------

STOP_WAIT = 30.0


def read_mods(server: OldServer) -> modules.Mods:
    """What mods-enabled/ (name -> link target, None for a non-link) and
    mods-available/ hold; mods-enabled/ must be a directory only root can write."""
    enabled_dir = os.path.join(server.root, "mods-enabled")
    safefs.require_trusted_dir(enabled_dir)
    enabled: dict[str, str | None] = {}
    for name in sorted(os.listdir(enabled_dir)):
        path = os.path.join(enabled_dir, name)
        enabled[name] = os.readlink(path) if os.path.islink(path) else None
    available = frozenset(os.listdir(os.path.join(server.root, "mods-available")))
    return modules.Mods(server.root, enabled, available)


def plan_modphp_off(server: OldServer) -> modules.LinkPlan:
    """The links stage 4 switches, or a PlanError naming every obstacle (mod_php's
    directives in the admin's files included) before anything changes."""
    source = server.source
    plan = modules.modphp_off(read_mods(server), source.modules,
                              modules.loaders(source.directives))
    lines = modules.php_only_lines(source.directives, source.modules,
                                   (link for link, _ in plan.remove), frozenset(source.variables))
    if lines:
        raise PlanError("stage 4 (modphp-off): these lines are mod_php's; apache2 refuses "
                        "them once mod_php is not loaded:\n  " + "\n  ".join(lines) +
                        "\nThe spec's pools already hold their values (the web user's FPM "
                        "serves them since stage 3): remove each line, or wrap it in "
                        "<IfModule php_module>, reload Apache (apache2ctl graceful), then run "
                        "migrate again. Nothing was changed")
    found = htaccess_php_lines(server)
    if found:
        raise PlanError("stage 4 (modphp-off): these .htaccess lines need mod_php:\n  " +
                        "\n  ".join(found) + "\nThe docroot's PHP values are in the spec's "
                        "pool since stage 3 (a sub-directory's belong in its .user.ini, as "
                        "phphost import said): remove the lines (or wrap them in <IfModule "
                        "php_module>), then run migrate again. Nothing was changed")
    return plan


def htaccess_php_lines(server: OldServer) -> list[str]:
    """modules.htaccess_lines of every `.htaccess` Apache reads under the docroots of
    the vhosts it serves (walked by descriptor, as import walks them)."""
    source = server.source
    everywhere = ServerLines(global_lines(source))
    user = web_user(source.user)
    access = apacheconf.global_value(list(source.directives), "accessfilename") or ".htaccess"
    out: list[str] = []
    seen: set[str] = set()
    for draft in drafts(source):
        for vhost in draft.vhosts:
            if vhost.docroot is None or os.path.realpath(vhost.docroot) in seen:
                continue
            docroot = os.path.realpath(vhost.docroot)
            seen.add(docroot)
            lines = everywhere.for_docroot(docroot) + list(vhost.directives)
            for h in tree.scan(docroot, user, re.compile(PHP_NAMES), access).htaccess:
                if h.text is None or \
                        effective_override(lines, os.path.dirname(h.path)).lower() == "none":
                    continue
                out += modules.htaccess_lines(apacheconf.parse(h.path, h.text))
    return out


def htaccess_phphost_refuses(server: OldServer, model: Model) -> list[str]:
    """Stage 6: the lines of every `.htaccess` under the docroot of each spec site that
    reads them (`allow_override`) which phphost's rendering refuses (a 500 there),
    walked by descriptor as import walks them."""
    user = web_user(server.source.user)
    access = apacheconf.global_value(list(server.source.directives),
                                     "accessfilename") or ".htaccess"
    loaded = server.source.modules - {"php_module", "php7_module", "php8_module"}
    out: list[str] = []
    for site in model.sites:
        if not site.docroot or not site.allow_override or not os.path.isdir(site.docroot):
            continue
        for h in tree.scan(site.docroot, user, re.compile(PHP_NAMES), access).htaccess:
            if h.text is not None:
                out += modules.phphost_refuses(apacheconf.parse(h.path, h.text),
                                               site.allow_override, loaded)
    return out


def switch_links(plan: modules.LinkPlan) -> None:
    """Take out the links of plan.remove (only while they still point where the plan
    says: a link someone changed since is theirs) and make those of plan.make.
    Idempotent, so an interrupted switch is finished or undone by running it again."""
    for link, target in plan.remove:
        if os.path.islink(link) and os.readlink(link) == target:
            files.remove(link)
    for link, target in plan.make:
        files.atomic_symlink(link, target)


def pid_file(server: OldServer) -> str:
    out = server.apache("-t", "-D", "DUMP_RUN_CFG")
    found = re.search(r'^PidFile: "(.*)"\s*$', out, re.M)
    if found is None:
        raise HostError(f"{server.config}: apache2 -t -D DUMP_RUN_CFG shows no PidFile; "
                        "stage 4 needs it to restart the server")
    return found[1]


def read_pid(path: str) -> int | None:
    text = files.read_text(path)
    try:
        return int(text.strip()) if text else None
    except ValueError:
        return None


def alive(pid: int) -> bool:
    """A process that has not exited (a zombie has: its sockets are closed)."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as fh:
            state = fh.read().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")


def full_restart(server: OldServer, pidfile: str, probe: Url | None) -> int:
    """Stop the old Apache, wait until its parent is gone, start it again (an MPM
    cannot change in a running parent: httpd refuses, AH00534) and wait until the
    new parent answers the probe with 403. The new parent's pid; HostError when it
    does not come up."""
    old = read_pid(pidfile)
    if old is not None and alive(old):
        server.apache("-k", "stop", check=False)
        deadline = time.monotonic() + STOP_WAIT
        while alive(old):
            if time.monotonic() > deadline:
                raise HostError(f"apache2 (pid {old}) did not stop within {STOP_WAIT:.0f}s")
            time.sleep(0.1)
    server.apache("-k", "start")
    deadline = time.monotonic() + RELOAD_WAIT
    while time.monotonic() < deadline:
        new = read_pid(pidfile)
        if new is not None and new != old:
            if not alive(new):
                break
            if probe is None or fetch(probe, []).status == 403:
                return new
        time.sleep(0.3)
    raise HostError(f"{server.config}: apache2 did not come up after the restart (see its "
                    "error log)")
