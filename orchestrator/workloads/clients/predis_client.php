<?php
// Reference client: Predis (Debian's php-predis) as an application configures it. Library
// defaults throughout, except what an application must set: the Sentinels and service name
// ('replication' => 'sentinel'), the cluster's seed nodes ('cluster' => 'redis'), and a
// connection factory that translates the lab-network addresses the servers announce into the
// published ports they are reached through (Predis has no address-map option; its
// 'connections' option takes a factory, the library's own extension point).
// Run by `lab` with the environment variables of README's "Your own client".

require 'Predis/autoload.php';

const RETRY_PAUSE_US = 10000;   // after a failed attempt, as the tool's own probe does

function now(): float { return hrtime(true) / 1e9; }   // CLOCK_MONOTONIC on Linux

function emit(array $line): void { fwrite(STDOUT, json_encode($line, JSON_UNESCAPED_SLASHES) . "\n"); }

function addresses(string $name): array {
    $found = [];
    foreach (array_filter(explode(',', getenv($name) ?: '')) as $item) {
        $at = strrpos($item, ':');
        $found[] = ['host' => substr($item, 0, $at), 'port' => (int) substr($item, $at + 1)];
    }
    return $found;
}

class TranslatingFactory extends Predis\Connection\Factory {
    private $map = [];

    public function __construct(string $addressMap) {
        foreach (array_filter(explode(',', $addressMap)) as $pair) {
            [$inner, $outer] = explode('=', $pair, 2);
            $this->map[$inner] = $outer;
        }
    }

    public function create($parameters) {
        if (!$parameters instanceof Predis\Connection\ParametersInterface) {
            $parameters = $this->createParameters($parameters);
        }
        $outer = $this->map["{$parameters->host}:{$parameters->port}"] ?? null;
        if ($outer !== null) {
            $at = strrpos($outer, ':');
            $parameters = Predis\Connection\Parameters::create(array_merge(
                $parameters->toArray(), ['host' => substr($outer, 0, $at), 'port' => (int) substr($outer, $at + 1)]));
        }
        return parent::create($parameters);
    }
}

function connect(): Predis\Client {
    $factory = new TranslatingFactory(getenv('LAB_ADDRESS_MAP') ?: '');
    if (getenv('LAB_CLUSTER_SEEDS')) {
        return new Predis\Client(addresses('LAB_CLUSTER_SEEDS'), ['cluster' => 'redis', 'connections' => $factory]);
    }
    if (getenv('LAB_SENTINELS')) {
        return new Predis\Client(addresses('LAB_SENTINELS'), ['replication' => 'sentinel',
            'service' => getenv('LAB_MASTER_NAME'), 'connections' => $factory]);
    }
    return new Predis\Client(addresses('LAB_MASTER')[0], ['connections' => $factory]);
}

$stopping = false;
pcntl_async_signals(true);
pcntl_signal(SIGTERM, function () use (&$stopping) { $stopping = true; });

$prefix = getenv('LAB_KEY_PREFIX') ?: 'ext:';
$deadline = now() + (float) (getenv('LAB_RUN_SECONDS') ?: 600);
emit(['client' => 'predis', 'version' => Predis\Client::VERSION]);
$client = connect();
for ($seq = 1; !$stopping && now() < $deadline; $seq++) {
    $key = $prefix . $seq;
    $value = (string) $seq;
    $invoke = now();
    try {
        $client->set($key, $value);
        emit(['key' => $key, 'value' => $value, 'invoke' => $invoke, 'complete' => now(), 'outcome' => 'ok']);
    } catch (Exception $e) {
        // An error reply: refused. Anything else: unknown (the library may have sent it, and retried).
        $outcome = $e instanceof Predis\Response\ServerException ? 'fail' : 'info';
        emit(['key' => $key, 'value' => $value, 'invoke' => $invoke, 'complete' => now(), 'outcome' => $outcome,
              'error' => get_class($e) . ': ' . $e->getMessage()]);
        usleep(RETRY_PAUSE_US);
    }
}
try { $client->disconnect(); } catch (Exception $e) {}
