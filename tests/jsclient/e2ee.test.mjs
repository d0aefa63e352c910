// End-to-end encryption with matrix-js-sdk 43's Rust crypto
// (@matrix-org/matrix-sdk-crypto-wasm, through client.initRustCrypto with an
// in-memory store) against a real Lichen binary:
//
//   1-3. alice and bob, one device each, upload device keys, share an
//        m.megolm.v1.aes-sha2 room and decrypt each other's messages;
//   4-5. alice logs in a second device, which the others learn of through
//        device_lists in /sync, and which decrypts messages sent after it
//        logged in (from bob and from alice's first device);
//   6.   alice bootstraps cross-signing (the UIA answered with her password)
//        and her self-signing key signs both her devices;
//   7.   alice's first device creates a key backup and uploads the room keys;
//   8.   a fresh third device of alice restores the backup with the backup
//        decryption key and decrypts messages sent before it existed.
//
// Every decryption is checked against the exact plaintext sent. The steps
// share one server and build on each other, so they run in order; a step is
// skipped when one it needs did not pass (cross-signing, step 6, needs only
// the devices, not the messaging). A failing step's error lists the HTTP
// requests that failed during it (method, path, status, body), so a missing
// or wrong server endpoint is named. LICHEN_TEST_HTTP_LOG=1 prints every
// request at the end, =2 with the bodies of the E2EE requests too.
//
//   npm ci && LICHEN_BIN=/path/to/lichen node --test e2ee.test.mjs

import assert from "node:assert/strict";
import { after, describe, test } from "node:test";

import {
    httpLogLines,
    httpMark,
    httpProblemsSince,
    pollUntil,
    sdk,
    startCryptoSyncing,
    waitForDecrypted,
    waitForDecryptionFailure,
    waitForHttpQuiet,
} from "./e2ee-lib.mjs";
import { loginUser, registerUser, startLichen, waitUntil } from "./lib.mjs";

// The backup loop waits a random 0-10 s before each upload round, to spread
// many clients' uploads; one test client needs no spreading, and the whole
// file has to fit in a minute.
import { RustBackupManager } from "matrix-js-sdk/lib/rust-crypto/backup.js";

RustBackupManager.maxBackupLoopStartDelayMillis = 0;

const { RoomEvent, RoomMemberEvent } = sdk;

const PASSWORD = "correct horse battery staple";
const MEGOLM = "m.megolm.v1.aes-sha2";
const BACKUP_ALGORITHM = "m.megolm_backup.v1.curve25519-aes-sha2";
const STEP_TIMEOUT_MS = 15_000;

// The plaintexts, each checked exactly where it is decrypted.
const TEXT = {
    aliceFirst: "alice → bob: the eagle has landed 🦅 (1)",
    bobReply: "bob → alice: roger, über-secret ✔ (2)",
    bobToBothAliceDevices: "bob → alice's two devices (3)",
    aliceFromFirstDevice: "alice's first device → everyone, incl. her second (4)",
    bobAfterBackup: "bob, after the backup exists, before alice's third device (5)",
};

describe("matrix-js-sdk 43 Rust crypto (E2EE) against lichen", { timeout: 60_000 }, () => {
    let server;
    const users = {}; // "alice", "alice2", "alice3", "bob" -> { client, userId, deviceId, accessToken }
    let roomId;
    const sent = {}; // TEXT key -> { eventId, sessionId }
    let backupVersion;

    after(async () => {
        for (const { client } of Object.values(users)) client.stopClient();
        await server?.stop();
        if (["1", "2"].includes(process.env.LICHEN_TEST_HTTP_LOG)) console.error(httpLogLines().join("\n"));
    });

    // One numbered step, run in order: skipped unless the steps it needs
    // passed (so a missing endpoint fails one step, and steps that do not
    // depend on it still say whether theirs work), bounded in time even if an
    // SDK call never settles, and on failure its error carries the HTTP
    // requests that failed meanwhile.
    const passed = new Set();
    function step(number, title, needs, fn, { timeoutMs = STEP_TIMEOUT_MS } = {}) {
        test(`${number}. ${title}`, { timeout: timeoutMs + 1_000 }, async (t) => {
            const missing = needs.filter((n) => !passed.has(n));
            if (missing.length) {
                t.skip(`needs step ${missing.join(", ")}, which did not pass`);
                return;
            }
            const mark = httpMark();
            let timer;
            const deadline = new Promise((_, reject) => {
                timer = setTimeout(() => reject(new Error(`step took longer than ${timeoutMs} ms`)), timeoutMs);
            });
            try {
                await Promise.race([fn(t), deadline]);
                passed.add(number);
            } catch (err) {
                const detail = err instanceof sdk.MatrixError ? `\nMatrixError body: ${JSON.stringify(err.data)}` : "";
                err.message = `${err.message}${detail}\n${httpProblemsSince(mark).join("\n")}`;
                throw err;
            } finally {
                clearTimeout(timer);
            }
        });
    }

    async function newCryptoDevice(name, username, { register = false, initialSyncLimit = 50 } = {}) {
        if (register) await registerUser(server.baseUrl, username, PASSWORD);
        const user = await loginUser(server.baseUrl, username, PASSWORD);
        users[name] = user;
        await startCryptoSyncing(user, name, { initialSyncLimit });
        return user;
    }

    // Waits until `viewer`'s crypto lists `deviceId` of `userId` with the
    // device's own published keys (they went up with keys/upload and came
    // back through keys/query).
    async function waitForDeviceKeys(viewerName, ownerName, { downloadUncached = false } = {}) {
        const viewer = users[viewerName].client;
        const owner = users[ownerName];
        const ownKeys = await owner.client.getCrypto().getOwnDeviceKeys();
        let seen = "nothing yet";
        const device = await pollUntil(async () => {
            const map = await viewer.getCrypto().getUserDeviceInfo([owner.userId], downloadUncached);
            const devices = map.get(owner.userId);
            seen = devices ? `devices [${[...devices.keys()].join(", ")}]` : "no entry for the user";
            return devices?.get(owner.deviceId);
        }, {
            what: () => `${viewerName} to see ${ownerName}'s device ${owner.deviceId} and its keys ` +
                `(keys/upload, keys/query${downloadUncached ? "" : ", device_lists in /sync"}; sees ${seen})`,
        });
        assert.equal(device.getIdentityKey(), ownKeys.curve25519, `${viewerName} sees ${ownerName}'s curve25519 key`);
        assert.equal(device.getFingerprint(), ownKeys.ed25519, `${viewerName} sees ${ownerName}'s ed25519 key`);
        return device;
    }

    // Sends `text` from `senderName` and checks what went over the wire.
    async function sendEncrypted(senderName, key) {
        const client = users[senderName].client;
        const { event_id: eventId } = await client.sendMessage(roomId, { msgtype: sdk.MsgType.Text, body: TEXT[key] });
        assert.match(eventId, /^\$.+/, "event IDs start with '$'");
        const local = await waitUntil(() => client.getRoom(roomId)?.findEventById(eventId), {
            what: `${senderName} to hold its own ${eventId}`,
            on: [[client, [RoomEvent.Timeline, RoomEvent.LocalEchoUpdated]]],
        });
        assert.equal(local.getWireType(), sdk.EventType.RoomMessageEncrypted, "sent as m.room.encrypted");
        const wire = local.getWireContent();
        assert.equal(wire.algorithm, MEGOLM, "megolm-encrypted");
        assert.equal(typeof wire.ciphertext, "string", "the wire content is ciphertext");
        assert.equal(wire.body, undefined, "no plaintext on the wire");
        sent[key] = { eventId, sessionId: wire.session_id };
        return sent[key];
    }

    // Checks that `readerName` decrypts `key`'s message to exactly its text.
    async function assertDecrypts(readerName, key, senderName) {
        const ev = await waitForDecrypted(users[readerName].client, roomId, sent[key].eventId);
        assert.equal(ev.getContent().body, TEXT[key], `${readerName} decrypts ${key} to the exact plaintext`);
        assert.equal(ev.getContent().msgtype, sdk.MsgType.Text);
        assert.equal(ev.getSender(), users[senderName].userId, `${key} is from ${senderName}`);
        assert.ok(ev.isEncrypted(), `${readerName} got ${key} encrypted`);
        assert.equal(ev.getWireType(), sdk.EventType.RoomMessageEncrypted);
        return ev;
    }

    step(0, "lichen starts on a loopback port and serves /versions", [], async () => {
        server = await startLichen();
    });

    step(1, "alice and bob log in with Rust crypto; each one's device keys reach the other (keys/upload, keys/query)", [0], async () => {
        await newCryptoDevice("alice", "alice", { register: true });
        await newCryptoDevice("bob", "bob", { register: true });
        for (const name of ["alice", "bob"]) {
            const own = await users[name].client.getCrypto().getOwnDeviceKeys();
            assert.match(own.ed25519, /^[A-Za-z0-9+/]{43}$/, `${name} has an ed25519 device key`);
            assert.match(own.curve25519, /^[A-Za-z0-9+/]{43}$/, `${name} has a curve25519 identity key`);
        }
        await waitForDeviceKeys("alice", "bob", { downloadUncached: true });
        await waitForDeviceKeys("bob", "alice", { downloadUncached: true });
    });

    step(2, `alice creates an encrypted room (${MEGOLM}) and invites bob; bob joins; both see it encrypted`, [1], async () => {
        const alice = users.alice.client;
        const bob = users.bob.client;
        const bobId = users.bob.userId;

        ({ room_id: roomId } = await alice.createRoom({
            preset: sdk.Preset.PrivateChat,
            name: "Lichen E2EE test",
            initial_state: [{ type: sdk.EventType.RoomEncryption, state_key: "", content: { algorithm: MEGOLM } }],
        }));
        await waitUntil(() => alice.getRoom(roomId)?.getMyMembership() === "join", {
            what: "alice to see her new room through sync",
            on: [[alice, [RoomEvent.MyMembership]]],
        });
        await alice.invite(roomId, bobId);
        await waitUntil(() => bob.getRoom(roomId)?.getMyMembership() === "invite", {
            what: "bob to see the invite through sync",
            on: [[bob, [RoomEvent.MyMembership, RoomMemberEvent.Membership]]],
        });
        await bob.joinRoom(roomId);
        await waitUntil(() => bob.getRoom(roomId)?.getMyMembership() === "join", {
            what: "bob to be joined through sync",
            on: [[bob, [RoomEvent.MyMembership]]],
        });
        await waitUntil(() => alice.getRoom(roomId)?.getMember(bobId)?.membership === "join", {
            what: "alice to see bob joined",
            on: [[alice, [RoomMemberEvent.Membership]]],
        });
        for (const name of ["alice", "bob"]) {
            await pollUntil(() => users[name].client.getCrypto().isEncryptionEnabledInRoom(roomId), {
                what: `${name}'s crypto to treat the room as encrypted (m.room.encryption through sync)`,
            });
            const state = users[name].client.getRoom(roomId).currentState.getStateEvents(sdk.EventType.RoomEncryption, "");
            assert.equal(state?.getContent().algorithm, MEGOLM, `${name} sees m.room.encryption with ${MEGOLM}`);
        }
    });

    step(3, "alice and bob exchange messages; each decrypts the other's to the exact plaintext", [2], async () => {
        await sendEncrypted("alice", "aliceFirst");
        await assertDecrypts("bob", "aliceFirst", "alice");
        await sendEncrypted("bob", "bobReply");
        await assertDecrypts("alice", "bobReply", "bob");
    });

    step(4, "alice logs in a second device; bob and alice's first device learn of it (device_lists in /sync)", [2], async () => {
        await newCryptoDevice("alice2", "alice");
        assert.notEqual(users.alice2.deviceId, users.alice.deviceId, "a second login is a second device");
        await waitForDeviceKeys("bob", "alice2");
        await waitForDeviceKeys("alice", "alice2");
        await waitForDeviceKeys("alice2", "bob");
    });

    step(5, "alice's second device decrypts new messages from bob and from alice's first device", [3, 4], async () => {
        await sendEncrypted("bob", "bobToBothAliceDevices");
        await assertDecrypts("alice2", "bobToBothAliceDevices", "bob");
        await assertDecrypts("alice", "bobToBothAliceDevices", "bob");

        await sendEncrypted("alice", "aliceFromFirstDevice");
        await assertDecrypts("alice2", "aliceFromFirstDevice", "alice");
        await assertDecrypts("bob", "aliceFromFirstDevice", "alice");
    });

    // An authUploadDeviceSigningKeys callback: tries the upload without auth
    // (the spec lets a first upload skip UIA), and answers a UIA challenge
    // with alice's password. `record.uia` says what happened.
    function passwordUia(record) {
        return async (makeRequest) => {
            try {
                await makeRequest(null);
                record.uia = "not asked";
            } catch (err) {
                if (!(err instanceof sdk.MatrixError) || err.httpStatus !== 401 || !Array.isArray(err.data?.flows)) throw err;
                const passwordFlow = err.data.flows.some((f) => f.stages?.length === 1 && f.stages[0] === "m.login.password");
                assert.ok(passwordFlow, `keys/device_signing/upload offers m.login.password alone: ${JSON.stringify(err.data.flows)}`);
                assert.equal(typeof err.data.session, "string", "the UIA challenge has a session");
                await makeRequest({
                    type: "m.login.password",
                    identifier: { type: "m.id.user", user: "alice" },
                    password: PASSWORD,
                    session: err.data.session,
                });
                record.uia = "answered with m.login.password";
            }
        };
    }

    step(6, "alice bootstraps cross-signing (UIA answered with her password); her devices are cross-signed", [4], async (t) => {
        const alice = users.alice;
        const crypto = alice.client.getCrypto();

        // First keys: the server may take them without UIA (spec 1.11+).
        const first = {};
        await crypto.bootstrapCrossSigning({ authUploadDeviceSigningKeys: passwordUia(first) });
        t.diagnostic(`first keys/device_signing/upload: UIA ${first.uia}`);
        const firstMasterKeyId = await crypto.getCrossSigningKeyId("master_key");
        assert.ok(firstMasterKeyId, "bootstrapCrossSigning made a master key");

        // New keys replacing existing ones: the spec says UIA MUST be done.
        // First let the keys/query round trips the first upload set off
        // finish: an answer the server made before the replacement, arriving
        // after it, would make the crypto drop the new private keys as not
        // matching the published ones.
        await waitForHttpQuiet(/\/keys\/query/);
        const reset = {};
        await crypto.bootstrapCrossSigning({ setupNewCrossSigning: true, authUploadDeviceSigningKeys: passwordUia(reset) });
        t.diagnostic(`replacing keys/device_signing/upload: UIA ${reset.uia}`);
        assert.equal(reset.uia, "answered with m.login.password",
            "replacing the cross-signing keys is refused without UIA, and accepted with alice's password");
        assert.notEqual(await crypto.getCrossSigningKeyId("master_key"), firstMasterKeyId, "the reset made a new master key");

        const status = await crypto.getCrossSigningStatus();
        assert.deepEqual(status.privateKeysCachedLocally, { masterKey: true, selfSigningKey: true, userSigningKey: true },
            "alice's first device holds the three private cross-signing keys");
        assert.equal(status.publicKeysOnDevice, true, "and the public keys (read back from keys/query)");
        assert.equal(await crypto.isCrossSigningReady(), true, "cross-signing is ready on alice's first device");
        const masterKeyId = await crypto.getCrossSigningKeyId("master_key");
        const sskId = await crypto.getCrossSigningKeyId("self_signing_key");
        assert.ok(masterKeyId && sskId, "the master and self-signing key IDs are known");
        assert.equal((await crypto.getUserVerificationStatus(alice.userId)).isCrossSigningVerified(), true,
            "alice's first device trusts her own cross-signing identity");

        // bootstrapCrossSigning signs the device it runs on; the second device
        // is signed now, by the self-signing key, as after a verification.
        await crypto.crossSignDevice(users.alice2.deviceId);

        for (const device of [users.alice, users.alice2]) {
            const st = await pollUntil(async () => {
                const s = await crypto.getDeviceVerificationStatus(alice.userId, device.deviceId);
                return s?.signedByOwner && s.crossSigningVerified && s;
            }, { what: `alice's first device to see ${device.deviceId} signed by her self-signing key (keys/signatures/upload, then keys/query)` });
            assert.equal(st.isVerified(), true, `${device.deviceId} counts as verified for alice's first device`);
        }

        // Others read the same from the server: bob sees alice's published
        // cross-signing keys (master key = the one alice holds) and both her
        // devices signed by her self-signing key.
        const bobCrypto = users.bob.client.getCrypto();
        let bobSees = "nothing";
        const keys = await pollUntil(async () => {
            const k = await bobCrypto.getUserCrossSigningKeys(alice.userId);
            bobSees = JSON.stringify(k?.master_key?.keys ?? null);
            return k?.self_signing_key && Object.values(k.master_key?.keys ?? {}).includes(masterKeyId) && k;
        }, {
            what: () => `bob to fetch alice's current cross-signing keys, master ${masterKeyId} ` +
                `(device_lists in /sync, keys/query master_keys and self_signing_keys; bob sees master ${bobSees})`,
        });
        assert.deepEqual(Object.values(keys.master_key.keys), [masterKeyId], "bob sees alice's master key");
        assert.deepEqual(Object.values(keys.self_signing_key.keys), [sskId], "bob sees alice's self-signing key");
        assert.equal(keys.user_signing_key, undefined, "the user-signing key is not shown to others");
        for (const device of [users.alice, users.alice2]) {
            await pollUntil(async () => (await bobCrypto.getDeviceVerificationStatus(alice.userId, device.deviceId))?.signedByOwner, {
                what: `bob to see alice's device ${device.deviceId} signed by her self-signing key`,
            });
        }
        // And alice's second device, which has no private keys, sees itself signed.
        await pollUntil(async () => (await users.alice2.client.getCrypto().getDeviceVerificationStatus(alice.userId, users.alice2.deviceId))?.signedByOwner, {
            what: "alice's second device to see itself signed by her self-signing key",
        });
    });

    step(7, "alice's first device creates a key backup and backs up the room keys", [5], async () => {
        const alice = users.alice.client;
        const crypto = alice.getCrypto();
        await crypto.resetKeyBackup();
        backupVersion = await crypto.getActiveSessionBackupVersion();
        assert.ok(backupVersion, "a backup version is active after resetKeyBackup");
        const info = await crypto.getKeyBackupInfo();
        assert.equal(info?.version, backupVersion, "GET room_keys/version names the active version");
        assert.equal(info.algorithm, BACKUP_ALGORITHM);
        const trust = await crypto.isKeyBackupTrusted(info);
        assert.equal(trust.trusted, true, "alice's first device trusts the backup it signed");
        assert.equal(trust.matchesDecryptionKey, true, "and holds its decryption key");

        // A message after the backup exists: its key goes up too.
        await sendEncrypted("bob", "bobAfterBackup");
        await assertDecrypts("alice", "bobAfterBackup", "bob");

        const wanted = ["aliceFirst", "bobReply", "bobToBothAliceDevices", "aliceFromFirstDevice", "bobAfterBackup"];
        const wantedSessions = [...new Set(wanted.map((k) => sent[k].sessionId))];
        await pollUntil(async () => {
            const res = await alice.http.authedRequest(sdk.Method.Get, "/room_keys/keys", { version: backupVersion });
            const have = Object.keys(res.rooms?.[roomId]?.sessions ?? {});
            return wantedSessions.every((s) => have.includes(s));
        }, {
            what: `GET /room_keys/keys?version=${backupVersion} to hold the ${wantedSessions.length} megolm sessions of the room (room_keys/keys uploads)`,
            timeoutMs: 12_000,
        });
    });

    step(8, "a fresh device of alice restores the backup and decrypts messages sent before it existed", [7], async () => {
        const before = ["aliceFirst", "bobReply", "bobToBothAliceDevices", "aliceFromFirstDevice", "bobAfterBackup"];
        const senders = { aliceFirst: "alice", bobReply: "bob", bobToBothAliceDevices: "bob", aliceFromFirstDevice: "alice", bobAfterBackup: "bob" };

        const alice3 = await newCryptoDevice("alice3", "alice");
        // Without the backup, the new device cannot read the old messages.
        for (const key of before) await waitForDecryptionFailure(alice3.client, roomId, sent[key].eventId);

        // The backup decryption key, as alice would carry it over (recovery
        // key / secret storage); here taken from her first device.
        const aliceCrypto = users.alice.client.getCrypto();
        const backupKey = await aliceCrypto.getSessionBackupPrivateKey();
        assert.ok(backupKey instanceof Uint8Array && backupKey.length === 32, "alice's first device holds the 32-byte backup key");

        const crypto3 = alice3.client.getCrypto();
        await crypto3.storeSessionBackupPrivateKey(backupKey, backupVersion);
        const restored = await crypto3.restoreKeyBackup();
        const sessionCount = new Set(before.map((k) => sent[k].sessionId)).size;
        assert.ok(restored.total >= sessionCount && restored.imported >= sessionCount,
            `the restore finds and imports the room's ${sessionCount} sessions (total ${restored.total}, imported ${restored.imported})`);

        for (const key of before) await assertDecrypts("alice3", key, senders[key]);
    });
});
