<?php
// Who runs this pool's PHP: the identity other attacks compare against.
$pw = posix_getpwuid(posix_geteuid());
verify_out([
    'user' => $pw === false ? null : $pw['name'],
    'uid' => posix_geteuid(),
    'gid' => posix_getegid(),
    'groups' => posix_getgroups(),
    'pid' => getmypid(),
    'script' => __FILE__,
    'marker' => 'VERIFY-WHOAMI',
]);
