<?php
// Run in the TARGET pool: start a session holding a canary, report where it lives.
$args = verify_args();
if (ini_get('session.save_handler') !== 'files') {
    verify_out(['handler' => ini_get('session.save_handler')]);
    return;
}
ini_set('session.use_cookies', '0');
ini_set('session.use_strict_mode', '0');    // accept the id we name (so cleanup finds it)
if (!empty($args['id'])) {
    session_id((string)$args['id']);
}
session_start();
$_SESSION['verify'] = (string)($args['token'] ?? '');
$id = session_id();
session_write_close();
$path = session_save_path();
$dir = ($i = strrpos($path, ';')) === false ? $path : substr($path, $i + 1);
$dir = $dir === '' ? sys_get_temp_dir() : $dir;
verify_out(['handler' => 'files', 'id' => $id, 'dir' => $dir, 'file' => "$dir/sess_$id"]);
