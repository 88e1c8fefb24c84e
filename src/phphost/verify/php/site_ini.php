<?php
// Placed in a site's docroot by the attacking tenant: shows the settings and
// variables that PHP_VALUE / PHP_ADMIN_VALUE / Proxy injection would change.
header('Content-Type: application/json');
$pw = posix_getpwuid(posix_geteuid());
echo json_encode([
    'marker' => 'VERIFY-INI',
    'user' => $pw === false ? null : $pw['name'],
    'memory_limit' => ini_get('memory_limit'),
    'highlight_html' => ini_get('highlight.html'),
    'auto_prepend_file' => ini_get('auto_prepend_file'),
    'http_proxy_env' => getenv('HTTP_PROXY'),
    'http_proxy_server' => $_SERVER['HTTP_PROXY'] ?? null,
    'injected' => array_values(preg_grep('/^(PHP_VALUE|PHP_ADMIN_VALUE)$/', array_keys($_SERVER))),
]);
