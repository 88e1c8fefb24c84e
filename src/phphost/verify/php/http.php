<?php
// An HTTP request from inside the pool to Apache on loopback (127.0.0.1 only).
$args = verify_args();
$sock = @fsockopen('127.0.0.1', (int)$args['port'], $errno, $errstr, 3.0);
if ($sock === false) {
    verify_out(['connected' => false, 'error' => "$errstr (errno $errno)"]);
    return;
}
stream_set_timeout($sock, 8);
fwrite($sock, "GET {$args['path']} HTTP/1.0\r\nHost: {$args['host']}\r\n\r\n");
$raw = '';
while (!feof($sock) && strlen($raw) < 262144) {
    $chunk = fread($sock, 8192);
    if ($chunk === false || $chunk === '') {
        break;
    }
    $raw .= $chunk;
}
fclose($sock);
$parts = explode("\r\n\r\n", $raw, 2);
verify_out(['connected' => true, 'status_line' => strtok($parts[0], "\r\n"),
            'body' => $parts[1] ?? '']);
