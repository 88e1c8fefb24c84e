<?php
// Filesystem primitives, one per op: read, list, create, append, delete, symlink, link.
// ok=true means the call succeeded; `content` holds what a read returned.
function verify_fs(array $op): array
{
    $path = (string)$op['path'];
    $data = (string)($op['data'] ?? '');
    error_clear_last();
    $ok = false;
    $content = '';
    switch ($op['op']) {
        case 'read':
            $r = @file_get_contents($path, false, null, 0, 65536);
            $ok = $r !== false;
            $content = $ok ? $r : '';
            break;
        case 'list':
            $r = @scandir($path);
            $ok = $r !== false;
            $content = $ok ? implode("\n", array_slice(array_diff($r, ['.', '..']), 0, 50)) : '';
            break;
        case 'create':
        case 'append':
            $h = @fopen($path, $op['op'] === 'create' ? 'x' : 'a');
            $ok = $h !== false && @fwrite($h, $data) !== false;
            if ($h !== false) {
                fclose($h);
            }
            break;
        case 'delete':
            $ok = @unlink($path);
            break;
        case 'symlink':
            $ok = @symlink((string)$op['target'], $path);
            break;
        case 'link':
            $ok = @link((string)$op['target'], $path);
            break;
    }
    return ['op' => $op['op'], 'path' => $path, 'ok' => $ok,
            'error' => $ok ? '' : verify_error(), 'content' => $content];
}

$args = verify_args();
verify_out(['results' => array_map('verify_fs', $args['ops'] ?? [])]);
