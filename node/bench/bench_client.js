#!/usr/bin/env node
'use strict';
/**
 * Echo round trips through IPCClient, for the benchmark (python/benchmarks).
 *
 * Sequential, the same contract as python/benchmarks/bench_client.php:
 *   node bench_client.js SOCKET SIZES REPS MIN_TIME MIN_COUNT WARMUP
 *     SIZES     KiB, comma-separated (each message is N entries of 1 KiB)
 *     MIN_TIME  seconds each repetition lasts at least
 *   prints {"node_version", "rtt_seconds": {"KiB": [mean RTT of each repetition]}}
 *
 * Pipelined, 1 KiB echoes with INFLIGHT requests always in flight on one connection:
 *   node bench_client.js --pipelined SOCKET INFLIGHT REPS WINDOW WARMUP [SERVER_PID]
 *     WINDOW    seconds each repetition counts answers for, after WARMUP seconds
 *     SERVER_PID  also measure this process's CPU time
 *   prints {"node_version", "inflight", "msgs_per_second": [one per repetition],
 *           "timings": {"wall", "server_cpu", "client_cpu": [seconds per message, one per repetition]}}
 *   (timings as python/benchmarks/worker.py pipe reports them)
 */

const fs = require('fs');
const IPCClient = require('..');

const ENTRY_BYTES = 1024;
// '"e000000":"' + value + '",' is 13 bytes around each value.
const ENTRY_OVERHEAD = 13;
const ECHO_URI = '/ipcserver/test/echo';
// A 16 MiB echo on a loaded machine takes well under this; it only stops a broken run.
const REQUEST_TIMEOUT_MS = 120000;

function makeData(kib) {
  const value = 'x'.repeat(ENTRY_BYTES - ENTRY_OVERHEAD);
  const data = {};
  for (let i = 0; i < kib; i++) data['e' + String(i).padStart(6, '0')] = value;
  return data;
}

function sameEcho(got, data) {
  const keys = Object.keys(data);
  return got !== null && typeof got === 'object' && Object.keys(got).length === keys.length && keys.every((k) => got[k] === data[k]);
}

function seconds() {
  return performance.now() / 1000;
}

/** CPU seconds used so far by every thread of process `pid` (0 without one), as workload.cpu_seconds. */
function serverCpuSeconds(pid) {
  if (!pid) return 0;
  let total = 0;
  const base = `/proc/${pid}/task`;
  for (const task of fs.readdirSync(base)) {
    try {
      total += Number(fs.readFileSync(`${base}/${task}/schedstat`, 'ascii').split(' ')[0]);
    } catch {
      // a thread that ended meanwhile
    }
  }
  return total / 1e9;
}

function clientCpuSeconds() {
  const usage = process.cpuUsage();
  return (usage.user + usage.system) / 1e6;
}

async function timeRoundTrips(client, data, reps, minTime, minCount) {
  const results = [];
  for (let r = 0; r < reps; r++) {
    let count = 0;
    let elapsed;
    const start = seconds();
    for (;;) {
      await client.send(ECHO_URI, data);
      count++;
      elapsed = seconds() - start;
      if (count >= minCount && elapsed >= minTime) break;
    }
    results.push(elapsed / count);
  }
  return results;
}

async function sequential(args) {
  const [socket, sizes, reps, minTime, minCount, warmup] = args;
  const client = new IPCClient(socket, null, { requestTimeout: REQUEST_TIMEOUT_MS });
  await client.connect();
  const out = {};
  for (const size of sizes.split(',')) {
    const kib = parseInt(size, 10);
    const data = makeData(kib);
    if (!sameEcho(await client.send(ECHO_URI, data), data)) throw new Error(`${kib} KiB: the echo came back different`);
    await timeRoundTrips(client, data, 1, Number(warmup), 2);
    out[String(kib)] = await timeRoundTrips(client, data, parseInt(reps, 10), Number(minTime), parseInt(minCount, 10));
  }
  await client.close();
  return { node_version: process.versions.node, rtt_seconds: out };
}

async function pipelined(args) {
  const [socket, inflightText, repsText, windowText, warmupText, serverPidText] = args;
  const serverPid = serverPidText ? parseInt(serverPidText, 10) : 0;
  const inflight = parseInt(inflightText, 10);
  const client = new IPCClient(socket, null, { requestTimeout: REQUEST_TIMEOUT_MS });
  await client.connect();
  const data = makeData(1);
  if (!sameEcho(await client.send(ECHO_URI, data), data)) throw new Error('pipelined: the echo came back different');
  let answered = 0;
  let stopping = false;
  let failure = null;
  let running = inflight;
  let allDone;
  const drained = new Promise((resolve) => {
    allDone = resolve;
  });
  // Each answer sends the next request: INFLIGHT requests stay in flight.
  const onAnswer = (err) => {
    if (err) failure = failure || err;
    answered++;
    if (stopping || failure) {
      if (--running === 0) allDone();
      return;
    }
    client.send(ECHO_URI, data, onAnswer);
  };
  for (let i = 0; i < inflight; i++) client.send(ECHO_URI, data, onAnswer);
  const sleep = (s) => new Promise((resolve) => setTimeout(resolve, s * 1000));
  await sleep(Number(warmupText));
  const rates = [];
  const timings = { wall: [], server_cpu: [], client_cpu: [] };
  for (let r = 0; r < parseInt(repsText, 10); r++) {
    const count0 = answered;
    const server0 = serverCpuSeconds(serverPid);
    const client0 = clientCpuSeconds();
    const start = seconds();
    await sleep(Number(windowText));
    const wall = seconds() - start;
    const count = Math.max(answered - count0, 1);
    rates.push(count / wall);
    timings.wall.push(wall / count);
    timings.server_cpu.push((serverCpuSeconds(serverPid) - server0) / count);
    timings.client_cpu.push((clientCpuSeconds() - client0) / count);
  }
  stopping = true;
  await drained;
  await client.close();
  if (failure) throw failure;
  return { node_version: process.versions.node, inflight, msgs_per_second: rates, timings };
}

async function main(argv) {
  const pipe = argv[0] === '--pipelined';
  const args = pipe ? argv.slice(1) : argv;
  if (pipe ? args.length < 5 || args.length > 6 : args.length !== 6) {
    process.stderr.write(
      'usage: node bench_client.js SOCKET SIZES REPS MIN_TIME MIN_COUNT WARMUP\n' +
        '       node bench_client.js --pipelined SOCKET INFLIGHT REPS WINDOW WARMUP [SERVER_PID]\n',
    );
    return 2;
  }
  const result = await (pipe ? pipelined(args) : sequential(args));
  process.stdout.write(JSON.stringify(result) + '\n');
  return 0;
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err) => {
    process.stderr.write(`${err && err.stack ? err.stack : err}\n`);
    process.exitCode = 1;
  },
);
