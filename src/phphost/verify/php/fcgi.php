<?php
// Speak FastCGI from inside a pool to a Unix socket (another pool's): connect, send
// one request with the given params, return what came back.
function verify_len(int $n): string
{
    return $n < 128 ? chr($n) : pack('N', $n | 0x80000000);
}

function verify_record(int $type, string $content): string
{
    $pad = (8 - strlen($content) % 8) % 8;
    return pack('CCnnCx', 1, $type, 1, strlen($content), $pad) . $content . str_repeat("\0", $pad);
}

function verify_request(array $params): string
{
    $body = '';
    foreach ($params as $k => $v) {
        $body .= verify_len(strlen((string)$k)) . verify_len(strlen((string)$v)) . $k . $v;
    }
    return verify_record(1, pack('nCx5', 1, 0)) . verify_record(4, $body) . verify_record(4, '')
        . verify_record(5, '');
}

function verify_read(mixed $sock): array
{
    $out = ['stdout' => '', 'stderr' => '', 'ended' => false];
    $buf = '';
    while (!feof($sock) && strlen($buf) < 1048576) {
        $chunk = fread($sock, 8192);
        if ($chunk === false || ($chunk === '' && stream_get_meta_data($sock)['timed_out'])) {
            break;
        }
        $buf .= $chunk;
    }
    while (strlen($buf) >= 8) {
        $h = unpack('Cversion/Ctype/nid/nlen/Cpad', $buf);
        $content = substr($buf, 8, $h['len']);
        $buf = substr($buf, 8 + $h['len'] + $h['pad']);
        if ($h['type'] === 6) {
            $out['stdout'] .= $content;
        } elseif ($h['type'] === 7) {
            $out['stderr'] .= $content;
        } elseif ($h['type'] === 3) {
            $out['ended'] = true;
        }
    }
    return $out;
}

$args = verify_args();
$errno = 0;
$errstr = '';
$sock = @stream_socket_client('unix://' . $args['socket'], $errno, $errstr, 3.0);
if ($sock === false) {
    verify_out(['connected' => false, 'error' => "$errstr (errno $errno)"]);
    return;
}
stream_set_timeout($sock, 8);
$sent = empty($args['params']) ? 0 : fwrite($sock, verify_request($args['params']));
$answer = empty($args['params']) ? [] : verify_read($sock);
fclose($sock);
verify_out(['connected' => true, 'sent' => $sent] + $answer);
