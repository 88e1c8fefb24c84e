<?php
// Other pools' processes as this pool sees them: which pids of the given uids /proc
// shows, their command lines and environment, and whether signal 0 reaches them.
// Signal 0 only: it proves the capability and does nothing. The attacker's own
// workers are left out (when two pools share a uid, they would match too).
function verify_status(string $pid): ?array
{
    $st = @file_get_contents("/proc/$pid/status");
    if ($st === false || !preg_match('/^Uid:\s+\d+\s+(\d+)/m', $st, $uid)) {
        return null;
    }
    preg_match('/^PPid:\s+(\d+)/m', $st, $ppid);
    $ns = preg_match('/^NSpid:\s+(.*)$/m', $st, $m) ? array_map('intval', preg_split('/\s+/', trim($m[1]))) : [(int)$pid];
    return ['uid' => (int)$uid[1], 'ppid' => (int)($ppid[1] ?? 0), 'ns' => $ns];
}

// host pid of the pid-namespace init (ns pid 1) above $pid; 1 in the initial namespace
function verify_ns_init(array $all, int $pid): int
{
    for ($i = 0; $i < 4096 && isset($all[$pid]); $i++) {
        $ns = $all[$pid]['ns'];
        if (count($ns) === 1 || end($ns) === 1) {
            return count($ns) === 1 ? 1 : $pid;
        }
        $pid = $all[$pid]['ppid'];
    }
    return -1;
}

// the number that names $pid in the caller's pid namespace, or null if it has none
function verify_ns_number(array $all, array $me, int $pid): ?int
{
    $depth = count($me['ns']);
    for ($p = $pid, $i = 0; $i < 4096 && isset($all[$p]); $i++, $p = $all[$p]['ppid']) {
        if ($p === $me['init']) {
            return $all[$pid]['ns'][$depth - 1] ?? null;
        }
    }
    return $me['init'] === 1 ? $pid : null;
}

$args = verify_args();
$uids = array_map('intval', $args['uids'] ?? []);
$all = [];
foreach (@scandir('/proc') ?: [] as $p) {
    if (ctype_digit($p) && ($s = verify_status($p)) !== null) {
        $all[(int)$p] = $s;
    }
}
$self = (int)@readlink('/proc/self');
$me = $all[$self] ?? ['ns' => [getmypid()], 'uid' => posix_geteuid(), 'ppid' => 0];
$me['init'] = verify_ns_init($all, $self);
$own = 'php-fpm: pool ' . (string)($args['own_pool'] ?? '');
$found = [];
foreach ($all as $pid => $s) {
    if (!in_array($s['uid'], $uids, true)) {
        continue;
    }
    $cmd = @file_get_contents("/proc/$pid/cmdline");
    if ($cmd !== false && trim(str_replace("\0", ' ', $cmd)) === $own) {
        continue;   // the attacker's own workers (two pools may share a uid)
    }
    $env = @file_get_contents("/proc/$pid/environ");
    $num = verify_ns_number($all, $me, $pid);
    $found[] = ['pid' => $pid, 'uid' => $s['uid'],
                'cmdline' => $cmd === false ? null : trim(str_replace("\0", ' ', $cmd)),
                'environ' => $env === false ? null : strlen($env),
                'ns_number' => $num, 'kill0' => $num !== null && @posix_kill($num, 0)];
}
verify_out(['processes' => $found, 'visible' => count($all), 'self' => $self,
            'self_kill0' => posix_kill(getmypid(), 0)]);
