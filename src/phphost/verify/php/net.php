<?php
// TCP connections from this pool's PHP to the given host:port targets, as a tenant
// would open them (fsockopen, no shell). The host also watches its own listeners, so
// an answer that claims "refused" for a connection that arrived changes nothing.
$out = [];
foreach (verify_args()['targets'] ?? [] as $t) {
    $host = (string)($t[0] ?? '');
    $port = (int)($t[1] ?? 0);
    $start = microtime(true);
    $errno = 0;
    $errstr = '';
    $fp = @fsockopen(strpos($host, ':') !== false ? "[$host]" : $host, $port, $errno,
                     $errstr, 3.0);
    $ms = (int)round((microtime(true) - $start) * 1000);
    if ($fp !== false) {
        fclose($fp);
    }
    $out[] = ['host' => $host, 'port' => $port, 'connected' => $fp !== false,
              'error' => $fp === false ? "$errno $errstr" : '', 'ms' => $ms];
}
verify_out(['results' => $out]);
