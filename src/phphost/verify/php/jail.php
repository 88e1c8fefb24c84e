<?php
// Inside a chroot: what of the host is reachable. Paths are probed as given; the
// verifier decides what counts as a breach.
$args = verify_args();
$seen = [];
foreach ($args['paths'] ?? [] as $path) {
    error_clear_last();
    $list = @scandir($path);
    $read = is_array($list) ? false : @file_get_contents($path, false, null, 0, 4096);
    $seen[] = ['path' => $path, 'exists' => @file_exists($path) || @is_link($path),
               'list' => is_array($list) ? array_slice(array_diff($list, ['.', '..']), 0, 50) : null,
               'read' => $read === false ? null : strlen($read), 'error' => verify_error()];
}
$devices = [];
foreach (@scandir('/dev') ?: [] as $name) {
    $st = @lstat("/dev/$name");
    if ($st !== false && in_array($st['mode'] & 0170000, [0020000, 0060000], true)) {
        $devices[] = ['name' => "/dev/$name", 'rdev' => $st['rdev'],
                      'open' => @fopen("/dev/$name", 'r') !== false];
    }
}
@chdir('/');
for ($i = 0; $i < 64; $i++) {
    @chdir('..');
}
verify_out(['paths' => $seen, 'devices' => $devices, 'cwd_after_dotdot' => getcwd(),
            'root_listing' => array_slice(@scandir('/') ?: [], 0, 100)]);
