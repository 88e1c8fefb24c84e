<?php
// Fork loop: proc_open a path that cannot run, up to n times, keeping every process
// handle (so no child is reaped: each stays a process of this pool until the end).
// Reports how many forks succeeded and the first failure; then reaps them all.
$args = verify_args();
$n = max(0, min(4096, (int)($args['n'] ?? 0)));
$prog = (string)($args['prog'] ?? '/nonexistent');
$procs = [];
$error = '';
$t0 = microtime(true);
for ($i = 0; $i < $n && microtime(true) - $t0 < 10; $i++) {
    error_clear_last();
    $p = @proc_open([$prog], [], $pipes);
    if (!is_resource($p)) {
        $error = verify_error();
        break;
    }
    $procs[] = $p;
}
$created = count($procs);
foreach ($procs as $p) {
    proc_close($p);
}
verify_out(['have' => function_exists('proc_open'), 'created' => $created, 'asked' => $n,
            'error' => $error]);
