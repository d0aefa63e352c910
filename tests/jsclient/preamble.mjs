// Runs before matrix-js-sdk loads (lib.mjs imports it first; ES modules are
// evaluated in import order): fills the runtime gaps between the Node on these
// machines (v20) and what the SDK assumes (Node 22), and quiets the SDK's
// logging before any SDK module binds a log method.

import { logger as sdkRootLogger } from "matrix-js-sdk/lib/logger.js";

// Promise.withResolvers is ES2024 (Node 22); js-sdk >= 37.13 calls it in its
// HTTP layer, scheduler and interactive auth.
if (typeof Promise.withResolvers !== "function") {
    Object.defineProperty(Promise, "withResolvers", {
        configurable: true,
        writable: true,
        enumerable: false,
        value: function withResolvers() {
            let resolve;
            let reject;
            const promise = new this((res, rej) => {
                resolve = res;
                reject = rej;
            });
            return { promise, resolve, reject };
        },
    });
}

// The SDK logs at debug level, which buries test output. Keep warnings and
// errors unless LICHEN_TEST_SDK_LOG says otherwise (trace, debug, info, warn,
// error, silent). Child loggers (root.getChild) inherit the root's method
// factory, and some SDK modules bind root methods at load time, so the filter
// goes on the root here, before those modules load.
export const LOG_LEVELS = ["trace", "debug", "info", "warn", "error", "silent"];
export const sdkLogLevel = LOG_LEVELS.includes(process.env.LICHEN_TEST_SDK_LOG)
    ? process.env.LICHEN_TEST_SDK_LOG
    : "warn";
const threshold = LOG_LEVELS.indexOf(sdkLogLevel);
const sdkFactory = sdkRootLogger.methodFactory;
sdkRootLogger.methodFactory = (methodName, ...rest) =>
    LOG_LEVELS.indexOf(methodName) >= threshold ? sdkFactory(methodName, ...rest) : () => {};
sdkRootLogger.rebuild();
