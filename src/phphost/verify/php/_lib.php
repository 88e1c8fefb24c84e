<?php
// phphost verify: shared prelude of every probe run inside a pool. A probe is this
// file followed by one snippet (without its own "<?php" line). Arguments come as
// base64url JSON in ?a=..., the answer is one JSON object.
error_reporting(E_ALL);
ini_set('display_errors', '0');
header('Content-Type: application/json');

function verify_args(): array
{
    $raw = base64_decode(strtr((string)($_GET['a'] ?? ''), '-_', '+/'), true);
    $args = $raw === false ? null : json_decode($raw, true);
    return is_array($args) ? $args : [];
}

function verify_error(): string
{
    $e = error_get_last();
    error_clear_last();
    return $e === null ? '' : (string)$e['message'];
}

function verify_out(array $data): void
{
    echo json_encode($data, JSON_INVALID_UTF8_SUBSTITUTE | JSON_PARTIAL_OUTPUT_ON_ERROR);
}
