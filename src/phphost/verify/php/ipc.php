<?php
// SysV IPC across pools: "create" makes a sysvshm segment (key), a shmop segment
// (key+1) and a message queue (key+2), all mode 0666, each holding the canary;
// "read" looks for them without creating anything (shmop "a", msg_queue_exists) and
// reports what it found; "remove" deletes whatever of them this pool can see.
$args = verify_args();
$key = (int)($args['key'] ?? 0);
$canary = (string)($args['canary'] ?? '');
$op = (string)($args['op'] ?? '');
$out = ['op' => $op, 'key' => $key, 'errors' => [],
        'have' => function_exists('shm_attach') && function_exists('shmop_open')
                  && function_exists('msg_get_queue')];
if (!$out['have'] || $key <= 0) {
    verify_out($out);
    exit;
}
error_clear_last();
if ($op === 'create') {
    $shm = @shm_attach($key, 4096, 0666);
    $out['shm'] = $shm !== false && @shm_put_var($shm, 1, $canary);
    $seg = @shmop_open($key + 1, 'c', 0666, 256);
    $out['shmop'] = $seg !== false && @shmop_write($seg, $canary, 0) === strlen($canary);
    $queue = @msg_get_queue($key + 2, 0666);
    $out['msg'] = $queue !== false && @msg_send($queue, 1, $canary, false, false);
    $out['errors'][] = verify_error();
} elseif ($op === 'read') {
    $found = [];
    foreach ([$key, $key + 1] as $k) {
        $seg = @shmop_open($k, 'a', 0, 0);
        $found["shm $k"] = $seg === false ? null : bin2hex(@shmop_read($seg, 0, min(4096, shmop_size($seg))));
        $out['errors'][] = verify_error();
    }
    $msg = null;
    if (msg_queue_exists($key + 2)) {
        $queue = @msg_get_queue($key + 2, 0666);
        $type = 0;
        $found['msg ' . ($key + 2)] = ($queue !== false
            && @msg_receive($queue, 0, $type, 1024, $msg, false, MSG_IPC_NOWAIT)) ? (string)$msg : '';
    } else {
        $found['msg ' . ($key + 2)] = null;
    }
    $out['found'] = $found;
} elseif ($op === 'remove') {
    $out['removed'] = [];
    foreach ([$key, $key + 1] as $k) {
        $seg = @shmop_open($k, 'w', 0, 0);
        $out['removed'][] = $seg !== false && @shmop_delete($seg);
    }
    $out['removed'][] = msg_queue_exists($key + 2)
        && @msg_remove_queue(msg_get_queue($key + 2, 0666));
    error_clear_last();
}
verify_out($out);
