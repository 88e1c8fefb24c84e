"""Validate a plan's configuration before any of it goes live.

The Apache tree is copied into a staging directory, the plan's file writes, removals,
links and module changes are made there, and `apache2ctl -t` runs against the copy
(Debian's apache2ctl takes APACHE_CONFDIR and passes `-d` to apache2), while inotify
watches which live files it opens (read_as_staged: when it read none the plan changes,
apply needs no second test of the live tree after its writes). Each FPM pool
config the plan writes is written to a temporary file and `php-fpm -t` runs on that. Only when
everything passes does apply touch a live file, so a graceful reload from elsewhere
(logrotate's postrotate, an admin) can never load a configuration nobody validated.
"""

from __future__ import annotations

import os
import re
import shutil
import stat
import tempfile
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

from phphost import layout
from phphost.errors import HostError, ValidationFailed
from phphost.host import opened
from phphost.plan import actions as A
from phphost.runner import run
from phphost.safefs import FILE_FLAGS
from phphost.spec import extensions

_DEPENDS = re.compile(r"^#\s*Depends:\s*(.*)$", re.MULTILINE)


def module_closure(available: str, module: str, seen: set[str] | None = None) -> list[str]:
    """The module and what its .load file's `# Depends:` line names, recursively
    (what a2enmod enables with it), dependencies first."""
    seen = set() if seen is None else seen
    if module in seen:
        return []
    seen.add(module)
    try:
        with open(os.path.join(available, f"{module}.load"), encoding="utf-8") as fh:
            text = fh.read()
    except FileNotFoundError:
        return [module]
    deps = [d for m in _DEPENDS.findall(text) for d in m.replace(",", " ").split()]
    out: list[str] = []
    for dep in deps:
        out += module_closure(available, dep, seen)
    return [*out, module]


def _link_module(confdir: str, module: str, enable: bool) -> None:
    enabled, available = f"{confdir}/mods-enabled", f"{confdir}/mods-available"
    names = module_closure(available, module) if enable else [module]
    for name in names:
        for ext in ("load", "conf"):
            link = f"{enabled}/{name}.{ext}"
            if enable and os.path.exists(f"{available}/{name}.{ext}") \
                    and not os.path.lexists(link):
                os.symlink(f"../mods-available/{name}.{ext}", link)
            elif not enable and os.path.lexists(link):
                os.unlink(link)


def _staged(confdir: str, path: str) -> str:
    return confdir + path[len(layout.APACHE_DIR):]


def _touched_dirs(actions: Sequence[A.Action]) -> set[str]:
    """The live directories under the Apache tree whose entries the plan changes."""
    out: set[str] = set()
    for a in actions:
        if isinstance(a, (A.WriteFile, A.RemoveFile)):
            path = a.path
        elif isinstance(a, A.Symlink):
            path = a.link
        elif isinstance(a, A.ApacheModule):
            path = f"{layout.APACHE_DIR}/mods-enabled/{a.module}.load"
        else:
            continue
        if path.startswith(layout.APACHE_DIR + "/"):
            out.add(os.path.dirname(path))
    return out


def _links_into(directory: str) -> set[str]:
    """The live directories that the relative symlinks in `directory` point into."""
    out: set[str] = set()
    try:
        entries = list(os.scandir(directory))
    except OSError:
        return out
    for entry in entries:
        if entry.is_symlink():
            target = os.readlink(entry.path)
            if not target.startswith("/"):
                out.add(os.path.dirname(os.path.normpath(os.path.join(directory, target))))
    return out


def _real_dirs(actions: Sequence[A.Action]) -> set[str]:
    """The top-level directories of the Apache tree the staged copy must hold as
    directories of its own: those the plan changes, and (until nothing more is
    added) those whose relative symlinks point into one of them; through a link to
    the live directory, a relative symlink would resolve in the live tree."""
    # a link to a directory outside the tree counts as one (a write through a link to
    # it would land there); a link to another directory of the tree is staged as a
    # link to the staged one (_mirror)
    top = [e.path for e in os.scandir(layout.APACHE_DIR)
           if e.is_dir(follow_symlinks=False)
           or (e.is_dir() and _below_live(os.path.realpath(e.path)) is None)]
    real = {d for d in top if any(t == d or t.startswith(d + "/")
                                  for t in _touched_dirs(actions))}
    links = {d: _links_into(d) for d in top}
    grown = True
    while grown:
        more = {d for d in top if d not in real
                and any(t == r or t.startswith(r + "/") for t in links[d] for r in real)}
        real |= more
        grown = bool(more)
    return real


def _below_live(real: str) -> str | None:
    """A real path's part below the live tree ("" for the tree itself); None when it
    is outside."""
    top = os.path.realpath(layout.APACHE_DIR)
    if real == top or real.startswith(top + "/"):
        return real[len(top):]
    return None


def _mirror(staged: str, actions: Sequence[A.Action]) -> None:
    """`staged` as a view of the live Apache tree: the directories _real_dirs names
    are made anew (symlinks in them recreated as they are, files as absolute links to
    the live ones), or copied whole when the plan changes something deeper in them;
    every other entry is one absolute link to the live one. A one-pool change stages
    a handful of entries, not the 2,000 site files of 1,000 tenants. Writes to the
    staged tree replace a link, never write through it (_stage_apache)."""
    real, touched = _real_dirs(actions), _touched_dirs(actions)
    os.mkdir(staged)
    for entry in os.scandir(layout.APACHE_DIR):
        dest = os.path.join(staged, entry.name)
        if any(t.startswith(entry.path + "/") for t in touched):
            shutil.copytree(entry.path, dest, symlinks=True)    # changes below its top
        elif entry.path in real:
            _mirror_dir(entry.path, dest)
        elif entry.is_symlink():
            # a link to another directory of the tree (conf.d -> conf-enabled) leads to
            # the staged one, which holds the plan's changes
            rest = _below_live(os.path.realpath(entry.path)) if entry.is_dir() else None
            os.symlink(os.readlink(entry.path) if rest is None else staged + rest, dest)
        else:
            os.symlink(entry.path, dest)


def _mirror_dir(live: str, staged: str) -> None:
    os.mkdir(staged)
    for entry in os.scandir(live):
        dest = os.path.join(staged, entry.name)
        os.symlink(os.readlink(entry.path) if entry.is_symlink() else entry.path, dest)


def _in_stage(confdir: str, staged: str) -> str:
    """staged, refused unless its directory resolves inside the staged tree (a link
    to a live directory deeper down would take the write to the live tree)."""
    top = os.path.realpath(confdir)
    here = os.path.realpath(os.path.dirname(staged))
    if here != top and not here.startswith(top + "/"):
        raise HostError(
            f"{layout.APACHE_DIR + staged[len(confdir):]}: its directory is a symlink to "
            f"{here}, outside the Apache tree; phphost does not stage (or write) through it. "
            "Make it a directory of its own")
    return staged


def _stage_apache(confdir: str, actions: Sequence[A.Action]) -> None:
    _mirror(confdir, actions)
    for a in actions:
        if isinstance(a, A.WriteFile) and a.path.startswith(layout.APACHE_DIR + "/"):
            staged = _in_stage(confdir, _staged(confdir, a.path))
            if os.path.lexists(staged):     # a link to the live file: never written through
                os.unlink(staged)
            fd = os.open(staged, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
            with open(fd, "w", encoding="utf-8") as fh:
                fh.write(a.content)
        elif isinstance(a, A.RemoveFile) and a.path.startswith(layout.APACHE_DIR + "/"):
            staged = _in_stage(confdir, _staged(confdir, a.path))
            if os.path.lexists(staged):
                os.unlink(staged)
        elif isinstance(a, A.Symlink) and a.link.startswith(layout.APACHE_DIR + "/"):
            link = _in_stage(confdir, _staged(confdir, a.link))
            if os.path.lexists(link):
                os.unlink(link)
            os.symlink(a.target, link)
        elif isinstance(a, A.ApacheModule):
            _link_module(confdir, a.module, a.enable)


def _apache_test(confdir: str) -> None:
    env = {**os.environ, "APACHE_CONFDIR": confdir}
    proc = run(["apache2ctl", "-t"], check=False, env=env)
    if proc.returncode != 0:
        err = (proc.stderr or proc.stdout).strip().replace(confdir, layout.APACHE_DIR)
        raise ValidationFailed(
            f"apache2ctl configtest rejected the configuration the plan would write:\n{err}\n"
            "Nothing was changed. Fix the site's settings in the spec (TLS paths, names)")


def _real(path: str) -> str:
    """path with its directory resolved (as the kernel names the file it opens)."""
    return os.path.join(os.path.realpath(os.path.dirname(path)), os.path.basename(path))


def _changed_live(actions: Sequence[A.Action]) -> set[str]:
    """The live paths under the Apache tree the plan writes, removes or links (and
    where a link it replaces or removes leads now: a file is opened by its target's
    name), and the directories it adds, removes or replaces entries in."""
    paths: set[str] = set()
    for a in actions:
        if isinstance(a, (A.WriteFile, A.RemoveFile)):
            paths.add(a.path)
        elif isinstance(a, A.Symlink):
            paths.add(a.link)
    inside = [p for p in paths if p.startswith(layout.APACHE_DIR + "/")]
    return ({_real(p) for p in inside} | {os.path.realpath(p) for p in inside}
            | {os.path.realpath(d) for d in _touched_dirs(actions)})


# directives that name another configuration path (<IfFile> tests one exists), and
# mod_macro's, whose parameters can build any of them
_DIRECTIVES = r"include|includeoptional|serverroot|iffile|macro|use"
_PATH_DIRECTIVE = re.compile(r"^\s*[\"']?<?\s*(" + _DIRECTIVES + r")\b",
                             re.IGNORECASE | re.MULTILINE)
_PATH_ARG = re.compile(r"^[\"']?<?\s*(" + _DIRECTIVES + r")\b[\"']?\s*(.*)$", re.IGNORECASE)
_SLASHES = re.compile(r"/(?:\.?/)+")        # // and /./ name the same directory as /


def _config_text(path: str) -> str | None:
    """A regular file's text, opened without following a link and without blocking
    (a FIFO, a device: None, as a file that cannot be read)."""
    try:
        fd = os.open(path, FILE_FLAGS)
    except OSError:
        return None
    with open(fd, "rb") as fh:
        if not stat.S_ISREG(os.fstat(fh.fileno()).st_mode):
            return None
        return fh.read().decode("utf-8", "replace")


def _names_live_paths(path: str, live: tuple[str, ...]) -> bool:
    """Does a line of the file (not a comment) name the live tree, or include, test
    or root an absolute path, or one made of a variable? Such a line reads what the
    live tree holds before the writes, or what a test watching opens cannot see (a
    path that is only stat'ed, or does not exist yet). A file that cannot be read
    counts as one that does."""
    data = _config_text(path)
    if data is None:
        return True
    joined = re.sub(r"\\\r?\n", "", data)     # apache2 joins a continued line as is
    if not _PATH_DIRECTIVE.search(joined) and not any(x in _SLASHES.sub("/", joined)
                                                       for x in live):
        return False
    for line in re.split(r"\r?\n", joined):
        text = line.strip()
        if not text or text.startswith("#"):
            continue
        if any(x in _SLASHES.sub("/", text) for x in live):
            return True
        found = _PATH_ARG.match(text)
        if found and found.group(1).lower() in ("macro", "use"):
            return True
        if found:
            arg = found.group(2).lstrip("!").strip().lstrip("\"'")
            if arg.startswith("/") or "$" in arg or ".." in arg:
                return True
    return False


def read_as_staged(opened: set[str] | None, actions: Sequence[A.Action]) -> bool:
    """Did the staged test read the plan's tree, so that a test of the live tree once
    the plan has written it would parse the same files with the same content?
    `opened`: what the test opened in the live tree and in the directories its links
    lead to (host/opened.py; None: not known). Not when the plan changes Apache's
    modules (a2enmod and a2dismod are not what staging does), when the test opened a
    live file the plan changes or a live directory the plan adds or removes entries in
    (an absolute Include or ServerRoot, or a link with an absolute target, reads it as
    it is before the writes; a glob there lists it as it is now), or when a file it
    opened names the live tree or an absolute, variable or `..` path to include, test
    or root (paths only stat'ed, or not there yet, are opened by neither test; `..`
    leaves the staged tree for another place than the live tree's parent), or holds a
    mod_macro `<Macro>` or `Use` (its parameters can build any such path).
    Then apply tests the live tree after its writes."""
    if opened is None or any(isinstance(a, A.ApacheModule) for a in actions):
        return False
    if not opened.isdisjoint(_changed_live(actions)):
        return False
    live = (layout.APACHE_DIR + "/", os.path.realpath(layout.APACHE_DIR) + "/")
    return not any(_names_live_paths(p, live) for p in sorted(opened) if not os.path.isdir(p))


FPM_TESTS_AT_ONCE = max(2, os.cpu_count() or 1)


def _fpm_test(directory: str, action: A.WriteFile) -> None:
    staged = os.path.join(directory, os.path.basename(action.path))
    with open(staged, "w", encoding="utf-8") as fh:
        fh.write(action.content)
    proc = run([layout.FPM_BINARY, "-t", "--fpm-config", staged], check=False)
    if proc.returncode != 0:
        err = (proc.stderr or proc.stdout).strip().replace(staged, action.path)
        raise ValidationFailed(
            f"php-fpm -t rejected {action.path}:\n{err}\n"
            "Nothing was changed. Fix the pool's settings in the spec")


_EXTENSION_ARG = re.compile(r"(?:^| )-d extension=([a-z0-9_]+)(?= |$)")
_UNLOADABLE = re.compile(r"Unable to load dynamic library '([a-z0-9_]+)'")


def extensions_written(actions: Sequence[A.Action]) -> list[str]:
    """Every PHP extension a supervisord program the plan writes has its master load."""
    names: set[str] = set()
    for a in actions:
        if isinstance(a, A.WriteFile) and a.path.startswith(layout.SUPERVISOR_CONF_DIR + "/"):
            for line in a.content.splitlines():
                if line.startswith("command="):
                    names.update(_EXTENSION_ARG.findall(line))
    return sorted(names)


def validate_extensions(actions: Sequence[A.Action]) -> None:
    """Raise ValidationFailed when an extension a pool names (php_extensions, a
    recipe) is not installed: PHP would only warn and start the master without it.
    One php-fpm -m for the whole plan."""
    names = extensions_written(actions)
    if not names:
        return
    # in load order (what others need first)
    flags = [arg for n in extensions.closure(tuple(names)) for arg in ("-d", f"extension={n}")]
    proc = run([layout.FPM_BINARY, "-n", "-d", "html_errors=0", *flags, "-m"], check=False)
    missing = sorted(set(_UNLOADABLE.findall(proc.stdout + proc.stderr)))
    if proc.returncode != 0 or missing:
        raise ValidationFailed(
            f"PHP cannot load the extension(s) {', '.join(missing) or '?'} that pools' "
            f"php_extensions (or their recipes) name.\nNothing was changed. Install "
            "the php8.2-* packages that provide them (apt-cache search php8.2) or remove "
            "them from php_extensions")


def fpm_conf_writes(actions: Sequence[A.Action]) -> list[A.WriteFile]:
    return [a for a in actions if isinstance(a, A.WriteFile)
            and a.path.startswith(layout.FPM_CONF_DIR + "/") and a.path.endswith(".conf")]


def _touches_apache(actions: Sequence[A.Action]) -> bool:
    return any(
        isinstance(a, A.ApacheModule)
        or (isinstance(a, (A.WriteFile, A.RemoveFile))
            and a.path.startswith(layout.APACHE_DIR + "/"))
        or (isinstance(a, A.Symlink) and a.link.startswith(layout.APACHE_DIR + "/"))
        for a in actions)


def validate_apache(actions: Sequence[A.Action]) -> bool:
    """Raise ValidationFailed when apache2 would reject the tree the plan makes.
    Changes nothing outside a temporary directory. True when the test read the
    staged tree alone (read_as_staged): apply then needs no configtest of the live
    tree after writing it (at 1,000 sites each test parses every one, 0.15 s)."""
    if not _touches_apache(actions):
        return False
    os.makedirs(layout.RUN_DIR, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".stage-", dir=layout.RUN_DIR) as tmp:
        confdir = os.path.join(tmp, "apache2")
        _stage_apache(confdir, actions)
        with opened.watch(os.path.realpath(layout.APACHE_DIR)) as live:
            _apache_test(confdir)
        return read_as_staged(live.paths, actions)


def validate_fpm(actions: Sequence[A.Action]) -> None:
    """Raise ValidationFailed when php-fpm -t rejects a pool config the plan writes,
    tested beside the live one (FPM checks users, the log dir and the chroot exist:
    run this after identities and jails). Configs whose [global] sections are alike
    (the same but for the pool's own pid and log file names) are tested
    FPM_TESTS_BATCH at a time, as one config of many pools: one php-fpm start instead
    of one per pool (each loads PHP and every extension, about 70 ms). The configs of
    a batch FPM rejects are tested again one at a time, and the first one in plan
    order that FPM rejects alone is reported with FPM's own words."""
    fpm = fpm_conf_writes(actions)
    if not fpm:
        return
    batches = _batches(fpm)
    with tempfile.TemporaryDirectory(prefix=".stage-", dir=layout.RUN_DIR) as tmp, \
            ThreadPoolExecutor(max_workers=FPM_TESTS_AT_ONCE) as pool:
        # independent processes: as many at once as the machine has cores
        passed = [pool.submit(_fpm_batch_passes, tmp, b) for b in batches]
        again = [a for b, ok in zip(batches, passed, strict=True) if not ok.result()
                 for a in b]
        for future in [pool.submit(_fpm_test, tmp, a) for a in again]:
            future.result()


FPM_TESTS_BATCH = 100
_POOL_SECTION = re.compile(r"^\[(?!global\])[^\]\n]+\][ \t]*$", re.MULTILINE)


def _split(content: str) -> tuple[str, str]:
    """A pool config as phphost renders it: (the [global] part, the pool's own
    section to the end); ("", "") when it has not exactly one pool section."""
    found = list(_POOL_SECTION.finditer(content))
    if len(found) != 1:
        return "", ""
    return content[:found[0].start()], content[found[0].start():]


def _batches(fpm: list[A.WriteFile]) -> list[list[A.WriteFile]]:
    """Consecutive configs whose [global] parts are alike, FPM_TESTS_BATCH at most;
    a config of another shape is a batch of its own."""
    out: list[list[A.WriteFile]] = []
    shape = ""
    for a in fpm:
        pool = os.path.basename(a.path).removesuffix(".conf")
        head, section = _split(a.content)
        mine = head.replace(f"/{pool}.", "/\0.") if section else ""
        if out and mine and mine == shape and len(out[-1]) < FPM_TESTS_BATCH:
            out[-1].append(a)
        else:
            out.append([a])
            shape = mine
    return out


def _fpm_batch_passes(directory: str, batch: list[A.WriteFile]) -> bool:
    """php-fpm -t of the first config followed by the others' pool sections."""
    text = batch[0].content + "".join("\n" + _split(a.content)[1] for a in batch[1:])
    staged = os.path.join(directory, os.path.basename(batch[0].path) + ".batch")
    with open(staged, "w", encoding="utf-8") as fh:
        fh.write(text)
    return run([layout.FPM_BINARY, "-t", "--fpm-config", staged], check=False).returncode == 0
