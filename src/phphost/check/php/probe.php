<?php
// phphost check: exercises one jail feature per request, inside a pool, as the pool's
// user. Arguments come as base64url JSON in ?a=... ({"test": NAME, ...}); the answer
// is one JSON object of facts. Python (phphost.check.judge) decides what they mean.
error_reporting(E_ALL);
ini_set('display_errors', '0');
ini_set('html_errors', '0');       // error_get_last() in plain text
header('Content-Type: application/json');

function check_args(): array
{
    $raw = base64_decode(strtr((string)($_GET['a'] ?? ''), '-_', '+/'), true);
    $args = $raw === false ? null : json_decode($raw, true);
    return is_array($args) ? $args : [];
}

function check_error(): string
{
    $e = error_get_last();
    error_clear_last();
    return $e === null ? '' : (string)$e['message'];
}

function check_identity(array $a): array
{
    $uid = posix_geteuid();
    $gid = posix_getegid();
    $pw = posix_getpwuid($uid);
    $gr = posix_getgrgid($gid);
    return ['uid' => $uid, 'gid' => $gid, 'user' => $pw === false ? null : $pw['name'],
            'group' => $gr === false ? null : $gr['name'], 'error' => check_error()];
}

function check_tmp(array $a): array
{
    $dir = sys_get_temp_dir();
    $path = $dir . '/phphost-check-' . bin2hex(random_bytes(6));
    $token = (string)($a['token'] ?? '');
    $fh = @fopen($path, 'x');
    $wrote = $fh !== false && @fwrite($fh, $token) === strlen($token);
    if ($fh !== false) {
        fclose($fh);
    }
    $read = $wrote ? @file_get_contents($path) : false;
    $error = check_error();
    $removed = $fh !== false && @unlink($path);
    return ['dir' => $dir, 'works' => $wrote && $read === $token, 'removed' => $removed,
            'error' => $error];
}

function check_zoneinfo(array $a): array
{
    $out = [];
    $zone = new DateTimeZone((string)$a['zone']);
    foreach ($a['stamps'] ?? [] as $ts) {
        $d = new DateTime('@' . (int)$ts);
        $d->setTimezone($zone);
        $out[] = $d->format('Y-m-d H:i:s T P');
    }
    return ['formatted' => $out, 'version' => timezone_version_get(), 'error' => check_error()];
}

function check_dns(array $a): array
{
    $name = (string)$a['name'];
    $list = @gethostbynamel($name);     // the system resolver: NSS, resolv.conf
    $error = check_error();
    // the DNS protocol directly (libc's resolver, loaded before the chroot): without
    // resolv.conf it asks 127.0.0.1:53, so this says nothing about the jail's files
    $raw = function_exists('dns_get_record') ? @dns_get_record($name, DNS_A) : false;
    check_error();
    return ['name' => $name, 'addresses' => $list === false ? null : $list,
            'error' => $error, 'resolv_conf' => is_readable('/etc/resolv.conf'),
            'hosts' => is_readable('/etc/hosts'),
            'raw' => is_array($raw) ? array_column($raw, 'ip') : null];
}

function check_tls(array $a): array
{
    $cafile = (string)ini_get('openssl.cafile');
    if ($cafile === '') {
        $cafile = openssl_get_cert_locations()['default_cert_file'];
    }
    $pem = @file_get_contents($cafile);
    $out = ['cafile' => $cafile, 'ca_certs' => $pem === false ? null
            : substr_count($pem, '-----BEGIN CERTIFICATE-----'), 'error' => check_error()];
    $url = (string)($a['url'] ?? '');
    if ($url === '') {
        return $out;
    }
    $ctx = stream_context_create(['ssl' => ['verify_peer' => true, 'verify_peer_name' => true],
                                  'http' => ['timeout' => 10, 'ignore_errors' => false]]);
    $body = @file_get_contents($url, false, $ctx);
    $out['stream'] = ['ok' => $body !== false, 'bytes' => $body === false ? 0 : strlen($body),
                      'error' => check_error()];
    if (!function_exists('curl_init')) {
        $out['curl'] = null;
        return $out;
    }
    $c = curl_init($url);
    curl_setopt_array($c, [CURLOPT_RETURNTRANSFER => true, CURLOPT_SSL_VERIFYPEER => true,
                           CURLOPT_SSL_VERIFYHOST => 2, CURLOPT_TIMEOUT => 10,
                           CURLOPT_FAILONERROR => true]);
    $body = curl_exec($c);
    $out['curl'] = ['ok' => is_string($body), 'bytes' => is_string($body) ? strlen($body) : 0,
                    'error' => curl_error($c)];
    curl_close($c);
    return $out;
}

function check_mail(array $a): array
{
    $out = ['sendmail_path' => (string)ini_get('sendmail_path'),
            'sendmail' => is_executable('/usr/sbin/sendmail')];
    if (empty($a['send'])) {
        return $out;
    }
    $headers = 'From: ' . (string)$a['from'] . "\r\nX-Phphost-Check: " . (string)$a['token'];
    $out['sent'] = mail((string)$a['to'], (string)$a['subject'], "phphost check\n",
                        $headers, '-f ' . (string)$a['sender']);
    $out['error'] = check_error();
    return $out;
}

function check_session(array $a): array
{
    $out = ['handler' => (string)ini_get('session.save_handler'),
            'save_path' => session_save_path(), 'name' => session_name()];
    $started = @session_start();
    $out['started'] = $started;
    $out['id'] = $started ? session_id() : null;
    if ((int)($a['step'] ?? 1) === 1) {
        if ($started) {
            $_SESSION['phphost_check'] = (string)($a['token'] ?? '');
            $out['written'] = @session_write_close();
        }
    } else {
        $out['value'] = $started ? ($_SESSION['phphost_check'] ?? null) : null;
        if ($started) {
            @session_destroy();
        }
    }
    $out['error'] = check_error();
    return $out;
}

function check_iconv(array $a): array
{
    if (!function_exists('iconv')) {
        return ['hex' => null, 'error' => 'the iconv extension is not loaded'];
    }
    $got = @iconv('UTF-8', 'CP1252', "\u{20ac}5 caf\u{e9}");
    return ['hex' => $got === false ? null : bin2hex($got), 'error' => check_error()];
}

function check_locale(array $a): array
{
    $name = (string)($a['name'] ?? 'C.UTF-8');
    $got = @setlocale(LC_ALL, $name);
    setlocale(LC_ALL, 'C');
    return ['name' => $name, 'set' => $got, 'error' => check_error()];
}

function check_proc(array $a): array
{
    $status = @file_get_contents('/proc/self/status');
    $uid = null;
    if ($status !== false && preg_match('/^Uid:\s+(\d+)/m', $status, $m)) {
        $uid = (int)$m[1];
    }
    $pids = array_filter(@scandir('/proc') ?: [], 'ctype_digit');
    return ['status_uid' => $uid, 'visible_pids' => count($pids), 'error' => check_error()];
}

function check_mysql(array $a): array
{
    $socket = (string)$a['socket'];
    $out = ['socket' => $socket, 'dir_visible' => is_dir(dirname($socket)),
            'socket_visible' => file_exists($socket)];
    if (!function_exists('mysqli_connect')) {
        return $out + ['errno' => null, 'error' => 'the mysqli extension is not loaded'];
    }
    mysqli_report(MYSQLI_REPORT_OFF);
    $user = (string)($a['user'] ?? '');
    if ($user === '') {
        $pw = posix_getpwuid(posix_geteuid());
        $user = $pw === false ? '' : $pw['name'];
    }
    $out['user'] = $user;
    $db = @mysqli_connect('localhost', $user, '', '', 0, $socket);
    if ($db === false) {
        return $out + ['connected' => false, 'errno' => mysqli_connect_errno(),
                       'error' => (string)mysqli_connect_error()];
    }
    $res = $db->query('SELECT CURRENT_USER(), VERSION(), 1 + 1');
    $row = $res === false ? null : $res->fetch_row();
    $db->close();
    return $out + ['connected' => true, 'errno' => 0, 'row' => $row, 'error' => check_error()];
}

function check_shell(array $a): array
{
    $got = @shell_exec('echo phphost-check-ok 2>&1');
    return ['output' => is_string($got) ? $got : null, 'bin_sh' => file_exists('/bin/sh'),
            'error' => check_error()];
}

function check_phplibs(array $a): array
{
    $dirs = [];
    foreach ($a['dirs'] ?? [] as $dir) {
        $names = is_dir((string)$dir) ? @scandir((string)$dir) : false;
        $dirs[(string)$dir] = $names === false ? null : count($names) - 2;
    }
    $sample = (string)($a['sample'] ?? '');
    $found = $sample === '' ? null : stream_resolve_include_path($sample);
    return ['dirs' => $dirs, 'include_path' => get_include_path(),
            'sample' => $sample, 'resolved' => $found === false ? null : $found,
            'error' => check_error()];
}

$tests = ['identity' => 'check_identity', 'tmp' => 'check_tmp', 'zoneinfo' => 'check_zoneinfo',
          'dns' => 'check_dns', 'tls' => 'check_tls', 'mail' => 'check_mail',
          'session' => 'check_session', 'iconv' => 'check_iconv', 'locale' => 'check_locale',
          'proc' => 'check_proc', 'mysql' => 'check_mysql', 'shell' => 'check_shell',
          'phplibs' => 'check_phplibs'];
$args = check_args();
$test = (string)($args['test'] ?? '');
error_clear_last();
try {
    $out = isset($tests[$test]) ? $tests[$test]($args) : ['error' => "unknown test '$test'"];
} catch (Throwable $e) {
    $out = ['error' => get_class($e) . ': ' . $e->getMessage(), 'thrown' => true];
}
$out['test'] = $test;
echo json_encode($out, JSON_INVALID_UTF8_SUBSTITUTE | JSON_PARTIAL_OUTPUT_ON_ERROR);
