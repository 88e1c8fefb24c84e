<?php
// What this pool's OPcache API shows and allows: the cached scripts (all pools that
// share this master's shared memory) and whether a reset is accepted.
$args = verify_args();
error_clear_last();
$status = function_exists('opcache_get_status') ? @opcache_get_status(true) : false;
$status_error = verify_error();
$reset = null;
$reset_error = '';
if (!empty($args['reset']) && function_exists('opcache_reset')) {
    $reset = @opcache_reset();
    $reset_error = verify_error();
}
verify_out([
    'status' => is_array($status),
    'status_error' => $status_error,
    'scripts' => is_array($status) ? array_keys($status['scripts'] ?? []) : [],
    'reset' => $reset,
    'reset_error' => $reset_error,
    'restrict_api' => ini_get('opcache.restrict_api'),
]);
