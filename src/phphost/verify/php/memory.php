<?php
// Memory hog beyond PHP's memory_limit: a SysV shared memory segment (not counted by
// memory_limit) of `size` bytes, marked for removal at once (it goes away when this
// worker detaches or dies), filled 1 MiB at a time. Reports how much was written.
$args = verify_args();
$size = max(0, min(64 << 30, (int)($args['size'] ?? 0)));
$key = (int)($args['key'] ?? 0);
$out = ['have' => function_exists('shmop_open'), 'size' => $size, 'written' => 0, 'error' => ''];
if ($out['have'] && $key > 0 && $size > 0) {
    error_clear_last();
    $seg = @shmop_open($key, 'c', 0600, $size);
    if ($seg === false) {
        $out['error'] = verify_error();
    } else {
        @shmop_delete($seg);
        $chunk = str_repeat("\xa5", 1 << 20);
        $t0 = microtime(true);
        while ($out['written'] + strlen($chunk) <= $size && microtime(true) - $t0 < 20) {
            if (@shmop_write($seg, $chunk, $out['written']) !== strlen($chunk)) {
                $out['error'] = verify_error();
                break;
            }
            $out['written'] += strlen($chunk);
        }
    }
}
verify_out($out);
