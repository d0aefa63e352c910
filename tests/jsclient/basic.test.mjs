// End-to-end: drive a real Lichen binary with matrix-js-sdk the way a chat
// app does — register, log in, sync, create a private room, invite, join,
// message, profile change, typing, read receipts, back-pagination, logout.
//
// The steps share one server and build on each other, so they run in order;
// once a step fails the later ones are skipped, leaving the first failure as
// the one to read.
//
//   npm ci && LICHEN_BIN=/path/to/lichen npm test

import assert from "node:assert/strict";
import { after, describe, test } from "node:test";

import {
    loginUser,
    registerUser,
    sdk,
    startLichen,
    startSyncing,
    timelineMessages,
    waitUntil,
} from "./lib.mjs";

const { RoomEvent, RoomMemberEvent } = sdk;

const PASSWORD = "correct horse battery staple";
const ROOM_NAME = "Lichen test";
const MESSAGE_COUNT = 30;
const EXPECTED_BODIES = Array.from({ length: MESSAGE_COUNT }, (_, i) => `msg ${i + 1}`);
const STEP_TIMEOUT_MS = 20_000;

describe("matrix-js-sdk 43 against lichen", { timeout: 60_000 }, () => {
    let server;
    const users = {}; // name -> { client, userId, deviceId, accessToken }
    let roomId;
    const sentEventIds = []; // event IDs of "msg 1".."msg 30", in send order

    after(async () => {
        for (const { client } of Object.values(users)) client.stopClient();
        await server?.stop();
    });

    // One ordered step: skipped if an earlier one failed, and bounded in time
    // even if the SDK call inside never settles.
    let failedStep = null;
    function step(name, fn) {
        test(name, { timeout: STEP_TIMEOUT_MS + 1_000 }, async (t) => {
            if (failedStep) {
                t.skip(`earlier step failed: ${failedStep}`);
                return;
            }
            let timer;
            const deadline = new Promise((_, reject) => {
                timer = setTimeout(() => reject(new Error(`step took longer than ${STEP_TIMEOUT_MS} ms`)), STEP_TIMEOUT_MS);
            });
            try {
                await Promise.race([fn(t), deadline]);
            } catch (err) {
                failedStep = name;
                throw err;
            } finally {
                clearTimeout(timer);
            }
        });
    }

    async function newSyncingUser(name, { initialSyncLimit }) {
        const registered = await registerUser(server.baseUrl, name, PASSWORD);
        const user = await loginUser(server.baseUrl, name, PASSWORD);
        users[name] = user;
        assert.equal(user.userId, registered.user_id, "login returns the registered user");
        assert.notEqual(user.deviceId, registered.device_id, "a password login creates a new device");
        await startSyncing(user.client, { initialSyncLimit });
        return user;
    }

    // Starting the server is a step rather than a before hook so that a
    // missing binary or a server that won't start is one failed test with
    // the reason (and the server's stderr), not eight cancelled ones.
    step("0. lichen starts on a loopback port and serves /versions", async () => {
        server = await startLichen();
    });

    step("1. alice and bob register, log in on a new device, and sync to PREPARED", async () => {
        await newSyncingUser("alice", { initialSyncLimit: 20 });
        await newSyncingUser("bob", { initialSyncLimit: 20 });
    });

    step("2. alice creates a private room and invites bob; bob sees the invite and joins", async () => {
        const alice = users.alice.client;
        const bob = users.bob.client;
        const bobId = users.bob.userId;

        ({ room_id: roomId } = await alice.createRoom({ preset: sdk.Preset.PrivateChat, name: ROOM_NAME }));
        assert.match(roomId, /^!.+/, "room IDs start with '!'");
        await waitUntil(() => alice.getRoom(roomId)?.getMyMembership() === "join", {
            what: "alice to see her new room through sync",
            on: [[alice, [RoomEvent.MyMembership]]],
        });

        await alice.invite(roomId, bobId);
        const invited = await waitUntil(() => bob.getRoom(roomId)?.getMyMembership() === "invite" && bob.getRoom(roomId), {
            what: "bob to see the invite through sync",
            on: [[bob, [RoomEvent.MyMembership, RoomMemberEvent.Membership]]],
        });
        assert.equal(invited.getMember(bobId)?.events.member?.getSender(), users.alice.userId, "the invite is from alice");

        await bob.joinRoom(roomId);
        await waitUntil(() => bob.getRoom(roomId)?.getMyMembership() === "join" && bob.getRoom(roomId).name === ROOM_NAME, {
            what: () => `bob to be joined to "${ROOM_NAME}" through sync (membership ${bob.getRoom(roomId)?.getMyMembership()}, name ${bob.getRoom(roomId)?.name})`,
            on: [[bob, [RoomEvent.MyMembership, RoomEvent.Name]]],
        });
        await waitUntil(() => alice.getRoom(roomId)?.getMember(bobId)?.membership === "join", {
            what: () => `alice to see bob joined (bob's membership: ${alice.getRoom(roomId)?.getMember(bobId)?.membership})`,
            on: [[alice, [RoomMemberEvent.Membership]]],
        });
    });

    step(`3. alice sends ${MESSAGE_COUNT} messages; bob receives them all through sync, in order`, async () => {
        const alice = users.alice.client;
        const bob = users.bob.client;
        const aliceId = users.alice.userId;

        const received = [];
        const onTimeline = (event, room, toStartOfTimeline, removed) => {
            if (room?.roomId !== roomId || toStartOfTimeline || removed) return;
            if (event.getType() === sdk.EventType.RoomMessage) received.push(event);
        };
        bob.on(RoomEvent.Timeline, onTimeline);
        try {
            for (const body of EXPECTED_BODIES) {
                const { event_id } = await alice.sendMessage(roomId, { msgtype: sdk.MsgType.Text, body });
                assert.match(event_id, /^\$.+/, "event IDs start with '$'");
                sentEventIds.push(event_id);
            }
            await waitUntil(() => received.length >= MESSAGE_COUNT, {
                what: () => `bob to receive ${MESSAGE_COUNT} messages through sync (has ${received.length})`,
                on: [[bob, [RoomEvent.Timeline]]],
            });
        } finally {
            bob.off(RoomEvent.Timeline, onTimeline);
        }

        assert.deepEqual(received.map((e) => e.getContent().body), EXPECTED_BODIES, "bodies, in order");
        assert.deepEqual(received.map((e) => e.getSender()), EXPECTED_BODIES.map(() => aliceId), "all sent by alice");
        assert.deepEqual(received.map((e) => e.getId()), sentEventIds, "the event IDs the sends returned");
        assert.deepEqual(timelineMessages(bob.getRoom(roomId)).map((e) => e.getContent().body), EXPECTED_BODIES,
            "bob's live timeline holds exactly these messages");

        // alice's own timeline: each local echo replaced by the server's copy, no duplicates.
        await waitUntil(() => {
            const mine = timelineMessages(alice.getRoom(roomId));
            return mine.length === MESSAGE_COUNT && mine.every((e) => e.status === null);
        }, {
            what: () => `alice's timeline to settle on ${MESSAGE_COUNT} sent messages (has ${timelineMessages(alice.getRoom(roomId)).length})`,
            on: [[alice, [RoomEvent.Timeline, RoomEvent.LocalEchoUpdated]]],
        });
        assert.deepEqual(timelineMessages(alice.getRoom(roomId)).map((e) => e.getId()), sentEventIds);
    });

    step('4. bob sets display name "Bob B"; alice sees the member name change through sync', async () => {
        const alice = users.alice.client;
        const bob = users.bob.client;
        const bobId = users.bob.userId;

        await bob.setDisplayName("Bob B");
        const member = await waitUntil(() => {
            const m = alice.getRoom(roomId)?.getMember(bobId);
            return m?.name === "Bob B" && m;
        }, {
            what: () => `alice to see bob's name "Bob B" (sees ${JSON.stringify(alice.getRoom(roomId)?.getMember(bobId)?.name)})`,
            on: [[alice, [RoomMemberEvent.Name]]],
        });
        assert.equal(member.membership, "join", "a profile change keeps bob joined");
        assert.equal(member.events.member?.getContent().displayname, "Bob B");
        const profile = await alice.getProfileInfo(bobId);
        assert.equal(profile.displayname, "Bob B", "GET /profile shows the new name");
    });

    step("5. alice types; bob sees RoomMember.typing for alice go true, then false", async () => {
        const alice = users.alice.client;
        const bob = users.bob.client;
        const aliceId = users.alice.userId;
        const aliceAsSeenByBob = () => bob.getRoom(roomId)?.getMember(aliceId);

        await alice.sendTyping(roomId, true, 10_000);
        await waitUntil(() => aliceAsSeenByBob()?.typing === true, {
            what: "bob to see alice typing",
            on: [[bob, [RoomMemberEvent.Typing]]],
        });
        await alice.sendTyping(roomId, false);
        await waitUntil(() => aliceAsSeenByBob()?.typing === false, {
            what: "bob to see alice stop typing",
            on: [[bob, [RoomMemberEvent.Typing]]],
        });
    });

    step("6. bob sends a read receipt for the last message; alice sees it through sync", async () => {
        const alice = users.alice.client;
        const bob = users.bob.client;
        const bobId = users.bob.userId;
        const lastId = sentEventIds.at(-1);

        const last = bob.getRoom(roomId).findEventById(lastId);
        assert.ok(last, "bob has the last message");
        assert.equal(last.getContent().body, `msg ${MESSAGE_COUNT}`);
        await bob.sendReadReceipt(last);

        // ignoreSynthesized: the SDK also infers receipts from a user's own
        // events (bob's later display-name change); only the server's counts.
        const receipt = await waitUntil(() => {
            const r = alice.getRoom(roomId)?.getReadReceiptForUserId(bobId, true, sdk.ReceiptType.Read);
            return r?.eventId === lastId && r;
        }, {
            what: () => `alice to see bob's m.read receipt on ${lastId} (sees ${JSON.stringify(alice.getRoom(roomId)?.getReadReceiptForUserId(bobId, true))})`,
            on: [[alice, [RoomEvent.Receipt]]],
        });
        assert.equal(typeof receipt.data?.ts, "number", "receipts carry a timestamp");
    });

    step(`7. carol joins later with initialSyncLimit 5 and back-paginates all ${MESSAGE_COUNT} messages`, async () => {
        const alice = users.alice.client;

        // The room is invite-only (private_chat): alice invites carol first.
        await registerUser(server.baseUrl, "carol", PASSWORD);
        const carolUser = await loginUser(server.baseUrl, "carol", PASSWORD);
        users.carol = carolUser;
        const carol = carolUser.client;
        await alice.invite(roomId, carolUser.userId);
        // Join before syncing, so the room arrives in carol's first sync,
        // the one sent with the inline timeline limit of 5.
        await carol.joinRoom(roomId);
        await startSyncing(carol, { initialSyncLimit: 5 });

        const room = carol.getRoom(roomId);
        assert.ok(room, "carol's first sync includes the room");
        assert.equal(room.getMyMembership(), "join");
        const initial = room.getLiveTimeline().getEvents();
        assert.ok(initial.length >= 1 && initial.length <= 5,
            `the first sync honours the timeline limit of 5 (got ${initial.length} events)`);
        assert.notEqual(room.oldState.paginationToken, null, "a limited timeline comes with a prev_batch token");
        // What the 5 events leave out must come as state in that first sync.
        assert.equal(room.name, ROOM_NAME, "the room name arrives as state");
        assert.equal(room.getMember(users.alice.userId)?.membership, "join", "alice's membership arrives as state");
        assert.equal(room.getJoinRule(), "invite", "private_chat rooms are invite-only");

        // private_chat sets history_visibility "shared": carol may read it all.
        for (let round = 0; round < 10 && room.oldState.paginationToken !== null; round++) {
            await carol.scrollback(room, 50);
        }
        assert.equal(room.oldState.paginationToken, null, "back-pagination reaches the start of the room");

        const events = room.getLiveTimeline().getEvents();
        assert.equal(events[0].getType(), sdk.EventType.RoomCreate, "history starts at m.room.create");
        const messages = timelineMessages(room);
        assert.deepEqual(messages.map((e) => e.getContent().body), EXPECTED_BODIES, "all messages, in order");
        assert.deepEqual(messages.map((e) => e.getId()), sentEventIds);
        assert.ok(messages.every((e) => e.getSender() === users.alice.userId), "all sent by alice");
        const ids = events.map((e) => e.getId());
        assert.equal(new Set(ids).size, ids.length, "no event appears twice in the timeline");
    });

    step("8. everyone logs out; the old access tokens then fail with M_UNKNOWN_TOKEN", async () => {
        for (const name of ["alice", "bob", "carol"]) {
            const { client, userId, deviceId } = users[name];
            const me = await client.whoami();
            assert.equal(me.user_id, userId, `${name}'s token works before logout`);
            assert.equal(me.device_id, deviceId, `whoami names ${name}'s device`);

            await client.logout(true); // stops the client, then POST /logout

            await assert.rejects(client.whoami(), (err) => {
                assert.ok(err instanceof sdk.MatrixError, `expected a MatrixError, got ${err}`);
                assert.equal(err.httpStatus, 401, `${name}'s old token: HTTP status`);
                assert.equal(err.errcode, "M_UNKNOWN_TOKEN", `${name}'s old token: errcode`);
                return true;
            }, `${name}'s access token must be refused after logout`);
        }
    });
});
