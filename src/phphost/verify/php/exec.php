<?php
// Write a program (bytes given by verify: a tiny static ELF that prints a marker) to
// each directory, make it executable and run it with proc_open and an argv array
// (no shell involved). Reports per directory: written, the error, what it printed.
$args = verify_args();
$elf = base64_decode((string)($args['elf'] ?? ''), true);
$name = basename((string)($args['name'] ?? 'x'));
$out = ['have' => function_exists('proc_open'), 'dirs' => []];
foreach ((array)($args['dirs'] ?? []) as $dir) {
    $dir = (string)$dir;
    $path = rtrim($dir, '/') . '/' . $name;
    $row = ['dir' => $dir, 'written' => false, 'ran' => false, 'output' => '', 'error' => ''];
    error_clear_last();
    if ($elf !== false && @file_put_contents($path, $elf) === strlen($elf) && @chmod($path, 0700)) {
        $row['written'] = true;
        if ($out['have']) {
            $pipes = [];
            $proc = @proc_open([$path], [1 => ['pipe', 'w'], 2 => ['pipe', 'w']], $pipes);
            if (is_resource($proc)) {
                $row['output'] = substr((string)stream_get_contents($pipes[1], 256), 0, 256);
                $row['error'] = substr((string)stream_get_contents($pipes[2], 256), 0, 256);
                fclose($pipes[1]);
                fclose($pipes[2]);
                $row['status'] = proc_close($proc);
                $row['ran'] = true;
            }
        }
    }
    $row['error'] = trim($row['error'] . ' ' . verify_error());
    @unlink($path);
    $out['dirs'][] = $row;
}
verify_out($out);
