// Shared setup for the matrix-js-sdk end-to-end tests: start a real Lichen
// binary on a loopback port, register and log in users the way a real client
// does, and wait on the SDK's sync-driven state with bounded timeouts.
//
// Each *.test.mjs file starts its own server (startLichen) and stops it in an
// `after` hook. Encrypted clients are set up by e2ee-lib.mjs, which calls
// client.initRustCrypto({ useIndexedDB: false }) before startSyncing().

// Must stay the first import: polyfills and log level, before the SDK loads.
import { LOG_LEVELS, sdkLogLevel } from "./preamble.mjs";

import { spawn } from "node:child_process";
import fs from "node:fs";
import fsp from "node:fs/promises";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { fileURLToPath } from "node:url";

import * as sdk from "matrix-js-sdk";

export { sdk };

/** The server name every test server is started with; user IDs end in it. */
export const SERVER_NAME = "localhost";

/** Default bound for any single wait on sync-driven state. */
export const WAIT_TIMEOUT_MS = 10_000;

/** Bound for a single HTTP request made by the SDK (other than /sync long polls). */
const REQUEST_TIMEOUT_MS = 15_000;

const TEST_DIR = path.dirname(fileURLToPath(import.meta.url));

// ---------------------------------------------------------------------------
// SDK logging
// ---------------------------------------------------------------------------

// Each client gets its own logger, so a line says whose client logged it; the
// level is the one preamble.mjs set for the SDK's root logger.
function makeSdkLogger(prefix) {
    const threshold = LOG_LEVELS.indexOf(sdkLogLevel);
    const at = (level) =>
        LOG_LEVELS.indexOf(level) >= threshold
            ? (...args) => console[level === "trace" ? "debug" : level](`[sdk ${prefix}]`, ...args)
            : () => {};
    return {
        trace: at("trace"),
        debug: at("debug"),
        info: at("info"),
        warn: at("warn"),
        error: at("error"),
        getChild: (child) => makeSdkLogger(`${prefix}${child}`),
    };
}

// ---------------------------------------------------------------------------
// The server
// ---------------------------------------------------------------------------

/**
 * Path of the Lichen binary under test: $LICHEN_BIN (resolved against the
 * current directory), else ../../bin/lichen relative to this directory.
 * Throws a clear error when there is no executable file there.
 */
export function lichenBinary() {
    const bin = process.env.LICHEN_BIN
        ? path.resolve(process.env.LICHEN_BIN)
        : path.resolve(TEST_DIR, "../../bin/lichen");
    let stat;
    try {
        stat = fs.statSync(bin);
    } catch {
        throw new Error(
            `lichen binary not found at ${bin}: build it first ` +
                `(e.g. 'go build -o bin/lichen ./cmd/lichen' in the repo root) or set LICHEN_BIN`,
        );
    }
    if (!stat.isFile()) throw new Error(`lichen binary at ${bin} is not a file`);
    try {
        fs.accessSync(bin, fs.constants.X_OK);
    } catch {
        throw new Error(`lichen binary at ${bin} is not executable`);
    }
    return bin;
}

/** A TCP port on 127.0.0.1 that was free a moment ago. */
export function freePort() {
    return new Promise((resolve, reject) => {
        const probe = net.createServer();
        probe.unref();
        probe.once("error", reject);
        probe.listen(0, "127.0.0.1", () => {
            const { port } = probe.address();
            probe.close(() => resolve(port));
        });
    });
}

/** Keeps the last `limit` characters written to a stream. */
class OutputTail {
    constructor(limit = 64 * 1024) {
        this.limit = limit;
        this.text = "";
    }
    push(chunk) {
        this.text += chunk.toString("utf8");
        if (this.text.length > this.limit) this.text = this.text.slice(-this.limit);
    }
}

/**
 * Starts Lichen with a fresh data directory on a free loopback port, with open
 * registration and no rate limiting, and waits until GET /_matrix/client/versions
 * answers 200 (polling every 50 ms, up to `readyTimeoutMs`; `bin` defaults to
 * lichenBinary()). Returns { baseUrl, port, dataDir, bin, stderr(), stop() };
 * stop() sends SIGTERM, waits for exit (SIGKILL after 5 s) and removes dataDir.
 *
 * LICHEN_TEST_SERVER_LOG=1 copies the server's output to this process's stderr.
 */
export async function startLichen({ bin = lichenBinary(), readyTimeoutMs = 10_000 } = {}) {
    const dataDir = await fsp.mkdtemp(path.join(os.tmpdir(), "lichen-jsclient-"));
    const port = await freePort();
    const baseUrl = `http://127.0.0.1:${port}`;
    const args = ["--data-dir", dataDir, "--listen", `127.0.0.1:${port}`, "--server-name", SERVER_NAME];

    const proc = spawn(bin, args, {
        env: { ...process.env, LICHEN_REGISTRATION: "open", LICHEN_RATE_LIMIT: "off" },
        stdio: ["ignore", "pipe", "pipe"],
    });
    const stderr = new OutputTail();
    const echo = process.env.LICHEN_TEST_SERVER_LOG === "1";
    proc.stdout.on("data", (chunk) => echo && process.stderr.write(`[lichen] ${chunk}`));
    proc.stderr.on("data", (chunk) => {
        stderr.push(chunk);
        if (echo) process.stderr.write(`[lichen] ${chunk}`);
    });

    let exitInfo = null; // set once the process is gone (or could not start)
    const exited = new Promise((resolve) => {
        proc.once("exit", (code, signal) => resolve((exitInfo ??= { code, signal })));
        proc.once("error", (err) => resolve((exitInfo ??= { error: err })));
    });
    // Never leave a server behind, even if this process dies mid-test.
    const killOnExit = () => proc.kill("SIGKILL");
    process.once("exit", killOnExit);

    const describeExit = () =>
        exitInfo.error
            ? `could not be started: ${exitInfo.error.message}`
            : `exited with code ${exitInfo.code}, signal ${exitInfo.signal}`;
    const withStderr = (msg) =>
        `${msg}\n--- lichen stderr (${bin} ${args.join(" ")}) ---\n${stderr.text || "(empty)"}\n--- end of lichen stderr ---`;

    let stopped = null;
    const stop = () =>
        (stopped ??= (async () => {
            if (!exitInfo) {
                proc.kill("SIGTERM");
                let timer;
                const graceful = await Promise.race([
                    exited,
                    new Promise((resolve) => (timer = setTimeout(resolve, 5_000, null))),
                ]);
                clearTimeout(timer);
                if (!graceful) {
                    proc.kill("SIGKILL");
                    await exited;
                }
            }
            process.removeListener("exit", killOnExit);
            await fsp.rm(dataDir, { recursive: true, force: true });
            return exitInfo;
        })());

    const versionsUrl = `${baseUrl}/_matrix/client/versions`;
    const deadline = Date.now() + readyTimeoutMs;
    let lastProblem = "no attempt yet";
    for (;;) {
        if (exitInfo) {
            await stop();
            throw new Error(withStderr(`lichen ${describeExit()} before serving ${versionsUrl}`));
        }
        try {
            const res = await fetch(versionsUrl, { signal: AbortSignal.timeout(1_000) });
            await res.arrayBuffer();
            if (res.status === 200) break;
            lastProblem = `HTTP ${res.status}`;
        } catch (err) {
            lastProblem = err.cause?.code ?? err.message;
        }
        if (Date.now() >= deadline) {
            await stop();
            throw new Error(
                withStderr(`lichen did not answer 200 on ${versionsUrl} within ${readyTimeoutMs} ms (last: ${lastProblem})`),
            );
        }
        await sleep(50);
    }

    return { baseUrl, port, dataDir, bin, stderr: () => stderr.text, stop };
}

// ---------------------------------------------------------------------------
// Accounts and clients
// ---------------------------------------------------------------------------

/** The full user ID Lichen gives a local username. */
export function userIdFor(username) {
    return `@${username}:${SERVER_NAME}`;
}

function newClient(opts) {
    return sdk.createClient({
        localTimeoutMs: REQUEST_TIMEOUT_MS,
        logger: makeSdkLogger(opts.userId ?? "anon"),
        ...opts,
    });
}

/**
 * Registers `username` through User-Interactive Auth as a client does
 * (spec: Client-Server API, "User-Interactive Authentication API"): the first
 * POST /register must answer 401 with a session and a flow made of
 * m.login.dummy alone; the retry completes that stage. Returns the /register
 * response ({ user_id, access_token, device_id }).
 */
export async function registerUser(baseUrl, username, password) {
    const anon = newClient({ baseUrl });
    let session;
    try {
        const res = await anon.registerRequest({ username, password });
        throw new Error(
            `register ${username}: expected 401 with UIA flows, got a registration without auth: ${JSON.stringify(res)}`,
        );
    } catch (err) {
        if (!(err instanceof sdk.MatrixError) || err.httpStatus !== 401) throw err;
        const { flows, session: s } = err.data;
        if (typeof s !== "string" || s === "") {
            throw new Error(`register ${username}: 401 without a UIA session: ${JSON.stringify(err.data)}`);
        }
        const dummyOnly = Array.isArray(flows) && flows.some((f) => f.stages?.length === 1 && f.stages[0] === "m.login.dummy");
        if (!dummyOnly) {
            throw new Error(`register ${username}: no flow of m.login.dummy alone in ${JSON.stringify(flows)}`);
        }
        session = s;
    }
    const res = await anon.registerRequest({ username, password, auth: { type: "m.login.dummy", session } });
    if (res.user_id !== userIdFor(username)) {
        throw new Error(`register ${username}: user_id ${res.user_id}, want ${userIdFor(username)}`);
    }
    return res;
}

/**
 * Logs in with a password (POST /login, m.login.password with an m.id.user
 * identifier), which creates a new device, and returns a client bound to that
 * session: { client, userId, deviceId, accessToken }. The client is not
 * syncing yet; see startSyncing.
 */
export async function loginUser(baseUrl, username, password) {
    const anon = newClient({ baseUrl });
    const res = await anon.loginRequest({
        type: "m.login.password",
        identifier: { type: "m.id.user", user: username },
        password,
        initial_device_display_name: "lichen jsclient test",
    });
    for (const field of ["user_id", "access_token", "device_id"]) {
        if (typeof res[field] !== "string" || res[field] === "") {
            throw new Error(`login ${username}: response lacks ${field}: ${JSON.stringify(res)}`);
        }
    }
    const client = newClient({
        baseUrl,
        accessToken: res.access_token,
        userId: res.user_id,
        deviceId: res.device_id,
    });
    return { client, userId: res.user_id, deviceId: res.device_id, accessToken: res.access_token };
}

/**
 * Starts the client's sync loop and resolves once the SDK reports sync state
 * PREPARED (first /sync processed). Fails at once if the SDK reports ERROR,
 * with the SDK's error (which names the failing URL).
 *
 * The sync filter asks for up to `timelineLimit` events per room on
 * incremental syncs, so a burst of messages between two long polls arrives
 * whole rather than as a limited (gappy) timeline; the first sync still uses
 * `initialSyncLimit`, as the SDK sends it as an inline filter.
 */
export async function startSyncing(client, { initialSyncLimit = 20, timelineLimit = 50, timeoutMs = WAIT_TIMEOUT_MS } = {}) {
    const filter = new sdk.Filter(client.getUserId());
    filter.setTimelineLimit(timelineLimit);

    const prepared = new Promise((resolve, reject) => {
        const timer = setTimeout(() => {
            client.off(sdk.ClientEvent.Sync, onSync);
            reject(new Error(`${client.getUserId()}: sync did not reach PREPARED within ${timeoutMs} ms (state ${client.getSyncState()})`));
        }, timeoutMs);
        function onSync(state, _prev, data) {
            if (state === sdk.SyncState.Prepared) {
                clearTimeout(timer);
                client.off(sdk.ClientEvent.Sync, onSync);
                resolve();
            } else if (state === sdk.SyncState.Error) {
                clearTimeout(timer);
                client.off(sdk.ClientEvent.Sync, onSync);
                reject(new Error(`${client.getUserId()}: sync failed before PREPARED: ${data?.error?.message ?? "unknown error"}`, { cause: data?.error }));
            }
        }
        client.on(sdk.ClientEvent.Sync, onSync);
    });
    await client.startClient({ initialSyncLimit, filter });
    await prepared;
}

// ---------------------------------------------------------------------------
// Waiting on sync-driven state
// ---------------------------------------------------------------------------

/**
 * Resolves with check()'s value once it is truthy. check() runs now, whenever
 * one of the named events fires on the given emitters, and every 100 ms as a
 * backstop (the SDK's state only changes when a sync response is processed,
 * so this never observes anything a sync did not deliver).
 *
 * @param check - () => value; a throw counts as "not yet"
 * @param opts.what - what is awaited, a string or a function giving one
 *   (called on timeout, so it can report the state reached)
 * @param opts.on - [[emitter, [eventName, ...]], ...]
 * @param opts.timeoutMs - give up after this long
 */
export function waitUntil(check, { what = "condition", on = [], timeoutMs = WAIT_TIMEOUT_MS } = {}) {
    return new Promise((resolve, reject) => {
        let done = false;
        let lastError = null;
        const listeners = [];
        const finish = (err, value) => {
            done = true;
            clearTimeout(timer);
            clearInterval(poll);
            for (const [emitter, name] of listeners) emitter.off(name, evaluate);
            if (err) reject(err);
            else resolve(value);
        };
        function evaluate() {
            if (done) return;
            try {
                const value = check();
                lastError = null;
                if (value) finish(null, value);
            } catch (err) {
                lastError = err;
            }
        }
        const timer = setTimeout(() => {
            const description = typeof what === "function" ? what() : what;
            const extra = lastError ? ` (last check threw: ${lastError.message})` : "";
            finish(new Error(`timed out after ${timeoutMs} ms waiting for ${description}${extra}`));
        }, timeoutMs);
        const poll = setInterval(evaluate, 100);
        for (const [emitter, names] of on) {
            for (const name of names) {
                emitter.on(name, evaluate);
                listeners.push([emitter, name]);
            }
        }
        evaluate();
    });
}

/** m.room.message events in the room's live timeline, oldest first. */
export function timelineMessages(room) {
    return room
        .getLiveTimeline()
        .getEvents()
        .filter((e) => e.getType() === sdk.EventType.RoomMessage);
}
