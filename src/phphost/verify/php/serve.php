<?php
// Listen on the loopback port verify names and answer whoever connects with verify's
// token, as a tenant's PHP would run a small server (a shell, a relay between
// tenants). verify judges by what its own client received, not by this answer.
$args = verify_args();
$port = (int)($args['port'] ?? 0);
$token = (string)($args['token'] ?? '');
$errno = 0;
$errstr = '';
$server = @stream_socket_server("tcp://127.0.0.1:$port", $errno, $errstr);
if ($server === false) {
    verify_out(['listening' => false, 'accepted' => false, 'error' => "$errno $errstr"]);
    return;
}
$conn = @stream_socket_accept($server, 2.5);
if ($conn !== false) {
    @fwrite($conn, $token);
    usleep(200000);
    fclose($conn);
}
fclose($server);
verify_out(['listening' => true, 'accepted' => $conn !== false, 'error' => '']);
