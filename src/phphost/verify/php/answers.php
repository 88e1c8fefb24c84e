<?php
// Run in the ATTACKING pool: plant symlinks and directories in a dir the pool writes
// (args "dir"; default its temp dir), then answer with whatever the caller crafted (as a compromised pool would), or
// with raw bytes, or with a padded answer of a given size.
$args = verify_args();
$tmp = rtrim((string)($args['dir'] ?? sys_get_temp_dir()), '/');
$planted = [];
foreach ((array)($args['dirs'] ?? []) as $name) {
    $planted[] = ['path' => "$tmp/$name", 'ok' => @mkdir("$tmp/$name", 0700)];
}
foreach ((array)($args['links'] ?? []) as $name => $target) {
    @unlink("$tmp/$name");
    $planted[] = ['path' => "$tmp/$name", 'ok' => @symlink((string)$target, "$tmp/$name")];
}
if (isset($args['raw'])) {
    echo (string)$args['raw'];
    return;
}
if (!empty($args['pad'])) {
    echo '{"tmp":"', $tmp, '","pad":"', str_repeat('x', (int)$args['pad']), '"}';
    return;
}
verify_out((array)($args['answer'] ?? []) + ['tmp' => $tmp, 'planted' => $planted]);
