# ASGI 3 glue run inside the embedded interpreter: one asyncio event loop in its own thread; the
# Rust side hands over (scope, receiver, sender) and the loop drives the app. Blocking waits on the
# Rust channels run in a small executor so the loop never blocks.
import asyncio
import builtins
import concurrent.futures
import inspect
import os
import threading
import traceback


# Python 3.11+ (anyio task groups, as in Starlette's StreamingResponse, raise these).
_GROUP = getattr(builtins, "BaseExceptionGroup", ())


class ClientDisconnected(OSError):
    """Raised by send() once the client has gone (ASGI: an OSError subclass)."""


def _is_disconnect(exc):
    """The app failed only because the client went away (possibly inside exception groups)."""
    if isinstance(exc, ClientDisconnected):
        return True
    if isinstance(exc, _GROUP):
        return all(_is_disconnect(e) for e in exc.exceptions)
    return False


def is_asgi(app):
    """Hypercorn's rule: a coroutine function, or an object whose __call__ is one."""
    if inspect.iscoroutinefunction(app):
        return True
    call = getattr(app, "__call__", None)
    return call is not None and inspect.iscoroutinefunction(call)


def _new_loop():
    """uvloop when the app's environment has it (as uvicorn and Granian do), else asyncio's;
    MSE_ASGI_LOOP=asyncio forces asyncio's."""
    if os.environ.get("MSE_ASGI_LOOP") == "asyncio":
        return asyncio.new_event_loop()
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


class Runner:
    def __init__(self, app, log_error, io_threads):
        self.app = app
        self.log_error = log_error
        self.state = {}
        self.lifespan = False
        self.loop = _new_loop()
        self.io = concurrent.futures.ThreadPoolExecutor(
            max_workers=io_threads, thread_name_prefix="mse-asgi-io"
        )
        self.thread = threading.Thread(target=self._run, name="mse-asgi-loop", daemon=True)
        self.thread.start()

    def _run(self):
        asyncio.set_event_loop(self.loop)
        self.loop.run_forever()

    def listen(self, fd, dispatcher):
        """Requests arrive through `dispatcher`, called when `fd` is readable."""
        self.loop.call_soon_threadsafe(dispatcher.install)
        self.loop.call_soon_threadsafe(self.loop.add_reader, fd, dispatcher)

    # HTTP -----------------------------------------------------------------------------------
    async def _handle(self, scope, rx, tx):
        if self.state:
            scope["state"] = dict(self.state)
        try:
            await self.app(scope, rx, tx)
        except BaseException as e:
            if _is_disconnect(e):
                tx.gone()
            else:
                tx.fail(traceback.format_exc())
        else:
            tx.done()
        finally:
            tx.finish()

    async def _recv_wait(self, rx):
        """receive() when no body chunk is ready: wait for one off the loop."""
        return rx.message(await self.loop.run_in_executor(self.io, rx.recv))

    async def _disconnect_wait(self, tx):
        """receive() after the body: http.disconnect once the response is over or the client left."""
        waiter = self.loop.create_future()
        tx.set_waiter(waiter)
        await waiter
        return {"type": "http.disconnect"}

    async def _send_wait(self, tx, body, more):
        """send() when the connection's channel is full: wait for room off the loop."""
        r = await self.loop.run_in_executor(self.io, tx.body, body, more)
        if r == 2:
            tx.finish()
            raise ClientDisconnected("client disconnected")
        if not more:
            tx.finish()

    # Lifespan -------------------------------------------------------------------------------
    def startup(self, timeout):
        fut = asyncio.run_coroutine_threadsafe(self._startup(), self.loop)
        return fut.result(timeout)

    async def _startup(self):
        self.ls_in = asyncio.Queue()
        self.ls_out = asyncio.Queue()
        scope = {
            "type": "lifespan",
            "asgi": {"version": "3.0", "spec_version": "2.0"},
            "state": self.state,
        }

        async def receive():
            return await self.ls_in.get()

        async def send(message):
            await self.ls_out.put(message)

        async def main():
            try:
                await self.app(scope, receive, send)
            except BaseException:
                await self.ls_out.put({"type": "mse.error", "traceback": traceback.format_exc()})

        self.ls_task = self.loop.create_task(main())
        await self.ls_in.put({"type": "lifespan.startup"})
        message = await self.ls_out.get()
        if message["type"] == "lifespan.startup.complete":
            self.lifespan = True
            return None
        if message["type"] == "lifespan.startup.failed":
            return message.get("message", "") or "lifespan.startup.failed"
        # An app that raises on the lifespan scope does not support it: serve without it.
        self.log_error("ASGI lifespan unsupported by the app; continuing without it\n"
                       + message.get("traceback", ""))
        return None

    def shutdown(self, timeout):
        if self.lifespan:
            fut = asyncio.run_coroutine_threadsafe(self._shutdown(), self.loop)
            try:
                msg = fut.result(timeout)
                if msg:
                    self.log_error("ASGI lifespan shutdown: " + msg)
            except Exception:
                self.log_error("ASGI lifespan shutdown failed\n" + traceback.format_exc())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout)
        self.io.shutdown(wait=False)

    async def _shutdown(self):
        await self.ls_in.put({"type": "lifespan.shutdown"})
        message = await self.ls_out.get()
        if message["type"] == "lifespan.shutdown.failed":
            return message.get("message", "") or "lifespan.shutdown.failed"
        return None
