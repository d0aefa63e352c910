// Helpers for the end-to-end-encryption test (e2ee.test.mjs), on top of
// lib.mjs: Rust crypto set-up for a client, an HTTP recorder that says which
// request the server refused, and waits on decryption and on async crypto
// state.
//
// Crypto store: initRustCrypto({ useIndexedDB: false }) keeps each device's
// Olm/Megolm state in memory (matrix-sdk-crypto-wasm's memory store), so no
// IndexedDB polyfill is needed under Node; a device lives as long as its
// MatrixClient, which is all a test needs.

// Must stay the first import (through lib.mjs: preamble, then the SDK).
import { sdk, startSyncing, WAIT_TIMEOUT_MS } from "./lib.mjs";

import { setTimeout as sleep } from "node:timers/promises";

export { sdk };

// ---------------------------------------------------------------------------
// HTTP recorder
// ---------------------------------------------------------------------------

// The SDK calls globalThis.fetch at request time (http-api/fetch.js) and the
// Rust crypto layer sends its requests (keys/upload, keys/query, keys/claim,
// sendToDevice, keys/device_signing/upload, keys/signatures/upload,
// room_keys/...) through the same HTTP layer, so wrapping globalThis.fetch
// sees every request a client makes. Each test file runs in its own process,
// so this wrapper only affects the file that imports this module.

/** Requests seen: { seq, at, who, method, path, status, body, error }. */
const entries = [];
let seq = 0;
const tokenLabels = new Map(); // access token -> "alice/DEVICEID"

/** Names the client behind an access token in the HTTP log. */
export function labelToken(accessToken, label) {
    tokenLabels.set(accessToken, label);
}

function headerValue(headers, name) {
    if (!headers) return undefined;
    if (typeof headers.get === "function") return headers.get(name) ?? undefined;
    for (const [k, v] of Object.entries(headers)) if (k.toLowerCase() === name) return v;
    return undefined;
}

// LICHEN_TEST_HTTP_LOG=2 also keeps request and response bodies of the E2EE
// endpoints for httpLogLines (the keys are public keys and ciphertext).
const VERBOSE = process.env.LICHEN_TEST_HTTP_LOG === "2";
const E2EE_PATH = /\/(keys|room_keys|sendToDevice)\//;

const realFetch = globalThis.fetch;
if (!realFetch.lichenRecorder) {
    const recordingFetch = async (resource, options = {}) => {
        const url = new URL(typeof resource === "string" ? resource : resource.url ?? String(resource));
        const method = (options.method ?? resource.method ?? "GET").toUpperCase();
        const auth = headerValue(options.headers, "authorization");
        const token = auth?.startsWith("Bearer ") ? auth.slice(7) : url.searchParams.get("access_token");
        const entry = {
            seq: ++seq,
            at: Date.now(),
            who: token ? (tokenLabels.get(token) ?? "?") : "anon",
            method,
            path: url.pathname + (url.search ? url.search.replace(/access_token=[^&]*/, "access_token=…") : ""),
            status: null,
            body: null,
            error: null,
        };
        entries.push(entry);
        try {
            const res = await realFetch(resource, options);
            entry.status = res.status;
            if (VERBOSE && E2EE_PATH.test(url.pathname)) {
                entry.reqBody = typeof options.body === "string" ? options.body.slice(0, 2000) : undefined;
                try {
                    entry.resBody = (await res.clone().text()).slice(0, 2000);
                } catch {}
            }
            if (!res.ok) {
                try {
                    entry.body = (await res.clone().text()).slice(0, 400);
                } catch (err) {
                    entry.body = `(body unreadable: ${err.message})`;
                }
            }
            return res;
        } catch (err) {
            entry.error = err?.name === "AbortError" ? "aborted" : (err?.cause?.code ?? err?.message ?? String(err));
            throw err;
        }
    };
    recordingFetch.lichenRecorder = true;
    globalThis.fetch = recordingFetch;
}

/** A position in the HTTP log, for httpProblemsSince. */
export function httpMark() {
    return seq;
}

function formatEntry(e) {
    const outcome = e.error ? `network error: ${e.error}` : `${e.status ?? "(no response yet)"}${e.body ? ` ${e.body}` : ""}`;
    return `#${e.seq} [${e.who}] ${e.method} ${e.path} -> ${outcome}`;
}

// Answers a working client meets in normal operation: UIA challenges, and
// 404 for account data that was never set and for "is there a key backup?"
// before one exists. Listed, but marked, so a real failure stands out.
function isRoutine(e) {
    if (e.status === 401 && e.body?.includes('"flows"')) return "UIA challenge";
    if (e.status === 404 && /\/account_data\//.test(e.path) && e.body?.includes("M_NOT_FOUND")) return "unset account data";
    if (e.status === 404 && /\/room_keys\/version$/.test(e.path.split("?")[0]) && e.body?.includes("M_NOT_FOUND")) return "no backup yet";
    if (e.status === 404 && e.path.startsWith("/_matrix/client/unstable/")) return "unstable MSC probe";
    if (e.error === "aborted") return "aborted by client";
    return null;
}

/**
 * Lines describing every request since `mark` that did not succeed (non-2xx
 * or network error), oldest first: the unexpected ones, then the routine
 * ones. At most `limit` of each.
 */
export function httpProblemsSince(mark, limit = 12) {
    const bad = entries.filter((e) => e.seq > mark && (e.error || (e.status !== null && (e.status < 200 || e.status > 299))));
    const unexpected = bad.filter((e) => !isRoutine(e));
    const routine = bad.filter((e) => isRoutine(e));
    const lines = [];
    if (unexpected.length) {
        lines.push(`HTTP requests that failed (${unexpected.length}; first ${Math.min(limit, unexpected.length)} distinct shown):`);
        const seen = new Set();
        for (const e of unexpected) {
            const key = `${e.who} ${e.method} ${e.path.split("?")[0]} ${e.status} ${e.error}`;
            if (seen.has(key)) continue;
            seen.add(key);
            lines.push(`  ${formatEntry(e)}`);
            if (seen.size >= limit) break;
        }
    } else {
        lines.push("no HTTP request failed unexpectedly");
    }
    if (routine.length) {
        lines.push(`routine non-2xx answers (${routine.length}): ` +
            routine.slice(0, limit).map((e) => `[${e.who}] ${e.method} ${e.path.split("?")[0]} ${e.status ?? e.error} (${isRoutine(e)})`).join("; "));
    }
    return lines;
}

/**
 * Waits until no request whose path matches `re` is in flight and none has
 * started for `quietMs` (e.g. until the keys/query round trips that a change
 * set off are over).
 */
export async function waitForHttpQuiet(re, { quietMs = 1_000, timeoutMs = WAIT_TIMEOUT_MS } = {}) {
    await pollUntil(() => {
        const matching = entries.filter((e) => re.test(e.path));
        const inFlight = matching.some((e) => e.status === null && e.error === null);
        const last = matching.at(-1);
        return !inFlight && (!last || Date.now() - last.at >= quietMs);
    }, { what: `no ${re} request for ${quietMs} ms`, timeoutMs, intervalMs: 100 });
}

/** The whole log, one line per request (for LICHEN_TEST_HTTP_LOG=1 or 2). */
export function httpLogLines() {
    return entries.map((e) => formatEntry(e) +
        (e.reqBody ? `\n    request: ${e.reqBody}` : "") + (e.resBody ? `\n    response: ${e.resBody}` : ""));
}

// ---------------------------------------------------------------------------
// Crypto clients

/** client -> the to-device messages its sync delivered ("type from sender"). */
const toDeviceReceived = new WeakMap();

/** One line on the to-device messages a client has received (through /sync). */
export function describeToDevice(client) {
    const got = toDeviceReceived.get(client) ?? [];
    if (!got.length) return "it has received no to-device message through /sync";
    const counts = new Map();
    for (const g of got) counts.set(g, (counts.get(g) ?? 0) + 1);
    return `to-device received through /sync: ${[...counts].map(([g, n]) => `${g} ×${n}`).join(", ")}`;
}
// ---------------------------------------------------------------------------

/**
 * Gives a logged-in user (loginUser's result) its Rust crypto, with an
 * in-memory store, then starts its sync (startSyncing). The device's keys
 * are uploaded by the crypto layer in the background once sync runs.
 */
export async function startCryptoSyncing(user, name, syncOpts = {}) {
    labelToken(user.accessToken, `${name}/${user.deviceId}`);
    const received = [];
    toDeviceReceived.set(user.client, received);
    user.client.on(sdk.ClientEvent.ReceivedToDeviceMessage, ({ message, encryptionInfo }) => {
        received.push(`${message.type}${encryptionInfo ? " (olm)" : ""} from ${message.sender}`);
    });
    await user.client.initRustCrypto({ useIndexedDB: false });
    const crypto = user.client.getCrypto();
    if (!crypto) throw new Error(`${name}: initRustCrypto left getCrypto() undefined`);
    await startSyncing(user.client, syncOpts);
    return crypto;
}

// ---------------------------------------------------------------------------
// Waiting
// ---------------------------------------------------------------------------

/**
 * Resolves with check()'s value once it is truthy; check may be async (the
 * crypto API is). Polls every `intervalMs`; a throw counts as "not yet" and
 * is reported on timeout.
 */
export async function pollUntil(check, { what = "condition", timeoutMs = WAIT_TIMEOUT_MS, intervalMs = 200 } = {}) {
    const deadline = Date.now() + timeoutMs;
    let lastError = null;
    let lastValue;
    for (;;) {
        try {
            lastValue = await check();
            lastError = null;
            if (lastValue) return lastValue;
        } catch (err) {
            lastError = err;
        }
        if (Date.now() >= deadline) {
            const description = typeof what === "function" ? what() : what;
            const extra = lastError ? ` (last check threw: ${lastError.message})` : "";
            throw new Error(`timed out after ${timeoutMs} ms waiting for ${description}${extra}`);
        }
        await sleep(intervalMs);
    }
}

/** One line on where an event stands in a client's view of a room. */
export function describeEvent(client, roomId, eventId) {
    const room = client.getRoom(roomId);
    if (!room) return "room unknown to the client";
    const ev = room.findEventById(eventId);
    if (!ev) return `event ${eventId} not in the client's timeline (timeline has ${room.getLiveTimeline().getEvents().length} events)`;
    if (ev.isBeingDecrypted()) return `event ${eventId} still being decrypted`;
    if (ev.isDecryptionFailure()) return `event ${eventId} failed to decrypt: ${ev.decryptionFailureReason} (${ev.getContent().body}); ${describeToDevice(client)}`;
    return `event ${eventId} is ${ev.getType()} (wire ${ev.getWireType()}), body ${JSON.stringify(ev.getContent().body)}`;
}

/**
 * Waits until `client` holds event `eventId` of room `roomId` as a decrypted
 * m.room.message (it arrived through sync as m.room.encrypted, and the
 * client's crypto decrypted it), and returns the MatrixEvent.
 */
export async function waitForDecrypted(client, roomId, eventId, { timeoutMs = WAIT_TIMEOUT_MS } = {}) {
    return pollUntil(() => {
        const ev = client.getRoom(roomId)?.findEventById(eventId);
        return ev && !ev.isBeingDecrypted() && !ev.isDecryptionFailure() && ev.getType() === sdk.EventType.RoomMessage && ev;
    }, {
        what: () => `${client.getUserId()}/${client.getDeviceId()} to decrypt ${eventId}: ${describeEvent(client, roomId, eventId)}`,
        timeoutMs,
        intervalMs: 100,
    });
}

/** Waits until `client` holds the event and has failed to decrypt it. */
export async function waitForDecryptionFailure(client, roomId, eventId, { timeoutMs = WAIT_TIMEOUT_MS } = {}) {
    return pollUntil(() => {
        const ev = client.getRoom(roomId)?.findEventById(eventId);
        return ev && !ev.isBeingDecrypted() && ev.isDecryptionFailure() && ev;
    }, {
        what: () => `${client.getUserId()}/${client.getDeviceId()} to hold ${eventId} as undecryptable: ${describeEvent(client, roomId, eventId)}`,
        timeoutMs,
        intervalMs: 100,
    });
}
