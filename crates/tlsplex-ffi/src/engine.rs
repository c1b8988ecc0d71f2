//! The engine's level: the whole daemon in the C program's process, from a TOML file or string
//! (everything the config can do: routes, paths, proxy, static, ACME, the admin endpoint,
//! metrics), on threads of its own. Reload, stop one server by name, and drain and stop all.
//! A server whose config says `handler = { type = "external", name = "app" }` hands each
//! connection, handshake done, to the C function given as `app` (the seed's
//! `startHttpsThread`), on a thread of its own, as a blocking `tlsplex_conn`.

use std::ffi::{c_char, c_void};
use std::path::Path;
use std::sync::{Mutex, OnceLock, PoisonError};
use std::time::Duration;

use tlsplex::config::Config;
use tlsplex::control::{ControlError, Controller, ReloadCause};
use tlsplex::daemon::{Daemon, DaemonError, DaemonPlan};
use tlsplex::handler::NamedHandlers;
use tlsplex::{Handler, HandlerError, TlsConn};

use crate::conn::tlsplex_conn;

use crate::handles::Handles;
use crate::tlsplex_result::{self, *};
use crate::{guard, put, text};

/// The whole daemon, running. Threads: any number at once (calls wait for each other).
#[allow(non_camel_case_types)]
pub enum tlsplex_engine {}

pub(crate) struct Engine {
    running: Mutex<Option<(tokio::runtime::Runtime, Daemon)>>,
}

/// A C function serving one connection: it gets the `user_data` it was given with and the
/// connection (handshake done), may read, write, close and ask for its facts, and returns when
/// done; tlsplex then frees the connection. It runs on a thread of its own per connection, so
/// it and its `user_data` must be safe to use from several threads at once.
#[allow(non_camel_case_types)]
pub type tlsplex_connection_fn =
    Option<unsafe extern "C" fn(user_data: *mut c_void, conn: *mut tlsplex_conn)>;

/// A handler for the config's `handler = { type = "external", name = NAME }`.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
#[allow(non_camel_case_types)]
pub struct tlsplex_handler {
    /// The name the config gives it.
    pub name: *const c_char,
    /// The function (not null).
    pub serve: tlsplex_connection_fn,
    /// Passed to it as it is.
    pub user_data: *mut c_void,
}

/// A C handler, as the engine runs it.
struct CHandler {
    serve: unsafe extern "C" fn(*mut c_void, *mut tlsplex_conn),
    user_data: UserData,
}

/// The C program's pointer, passed back to it untouched.
#[derive(Clone, Copy)]
struct UserData(*mut c_void);

// SAFETY: tlsplex never reads or writes through the pointer: it only hands it back to the C
// function, which tlsplex.h requires to be safe to call from several threads at once with it.
unsafe impl Send for UserData {}
// SAFETY: as for `Send`: shared only to be passed back to the C function.
unsafe impl Sync for UserData {}

impl Handler for CHandler {
    async fn serve(&self, conn: TlsConn) -> Result<(), HandlerError> {
        let runtime = tokio::runtime::Handle::current();
        let handle = crate::conn::engine_conn(conn, runtime);
        let (serve, user_data) = (self.serve, self.user_data);
        let (done, finished) = tokio::sync::oneshot::channel::<()>();
        std::thread::Builder::new()
            .name("tlsplex-handler".to_owned())
            .spawn(move || {
                let user_data = user_data;
                let conn: *mut tlsplex_conn = std::ptr::without_provenance_mut(handle);
                // SAFETY: a C function the program gave (not null: checked when given), called
                // as tlsplex.h describes: its own user_data and a live connection handle. A
                // panic cannot come out of C; an unwinding C++ exception would abort.
                unsafe { serve(user_data.0, conn) };
                crate::conn::forget_engine_conn(handle);
                drop(done);
            })?;
        // The connection's task lasts as long as the C function: it holds the connection's
        // place under the limits and in the server's drain.
        let _ = finished.await;
        Ok(())
    }
}

/// The program's handlers, by name.
///
/// # Safety
/// `handlers` must be null with `count` 0, or valid for reads of `count` handlers whose names
/// are NUL-terminated strings.
unsafe fn named(
    handlers: *const tlsplex_handler,
    count: usize,
) -> Result<NamedHandlers, tlsplex_result> {
    let mut named = NamedHandlers::default();
    if count == 0 {
        return Ok(named);
    }
    if handlers.is_null() {
        return Err(TLSPLEX_NULL_ARGUMENT);
    }
    // SAFETY: not null, and the caller promises `count` handlers there.
    let given = unsafe { std::slice::from_raw_parts(handlers, count) };
    for handler in given {
        // SAFETY: the caller promises a NUL-terminated name (or null, refused).
        let name = unsafe { text(handler.name) }?;
        let serve = handler.serve.ok_or(TLSPLEX_NULL_ARGUMENT)?;
        let user_data = UserData(handler.user_data);
        named.add(name, CHandler { serve, user_data });
    }
    Ok(named)
}

fn engines() -> &'static Handles<Engine> {
    static ENGINES: OnceLock<Handles<Engine>> = OnceLock::new();
    ENGINES.get_or_init(|| Handles::new(0))
}

/// How long `tlsplex_engine_free` waits for the engine's threads once the servers drained.
const THREADS_GRACE: Duration = Duration::from_secs(5);

/// Writes `message` into the caller's `error` buffer of `len` bytes (cut to fit, always
/// NUL-terminated); nothing when the buffer is null or empty.
///
/// # Safety
/// `error` must be null or valid for writes of `len` bytes.
unsafe fn tell(error: *mut c_char, len: usize, message: &str) {
    if error.is_null() || len == 0 {
        return;
    }
    let bytes = message.as_bytes();
    let n = bytes.len().min(len - 1);
    // SAFETY: `error` is valid for `len` bytes (the caller's promise) and `n + 1 <= len`; the
    // source is our own string, which cannot overlap the caller's buffer.
    unsafe {
        std::ptr::copy_nonoverlapping(bytes.as_ptr(), error.cast::<u8>(), n);
        error.add(n).write(0);
    }
}

fn daemon_error(error: &DaemonError) -> tlsplex_result {
    match error {
        DaemonError::Config(_) => TLSPLEX_BAD_CONFIG,
        DaemonError::Admin { .. } | DaemonError::PlainHttp { .. } | DaemonError::Server(_) => {
            TLSPLEX_BIND_FAILED
        }
        _ => TLSPLEX_IO_ERROR,
    }
}

/// Starts `config` (read from `path`; `None`: given as text, so there is no file to reload).
fn start(
    config: Config,
    path: Option<&Path>,
    handlers: NamedHandlers,
) -> Result<Engine, (tlsplex_result, String)> {
    let ctx = (config.global.context()).map_err(|e| (TLSPLEX_BAD_CONFIG, e.to_string()))?;
    let runtime = ctx
        .runtime()
        .map_err(|e| (TLSPLEX_IO_ERROR, e.to_string()))?;
    let mut plan = DaemonPlan::from_config_with(path.unwrap_or(Path::new("")), config, handlers);
    if path.is_none() {
        plan.source = None;
    }
    let daemon = runtime
        .block_on(Daemon::start(&ctx, plan))
        .map_err(|e| (daemon_error(&e), e.to_string()))?;
    Ok(Engine {
        running: Mutex::new(Some((runtime, daemon))),
    })
}

/// Starts the engine from `config` (read from `path`, or given as text) into `*out`, or writes
/// why it did not start into `error`.
///
/// # Safety
/// `handlers` must be null with a count of 0, or valid for reads of that many handlers; `error`
/// null or valid for writes of its length; `out` valid for a write of a pointer.
unsafe fn start_from(
    config: Result<Config, tlsplex::config::ConfigError>,
    path: Option<&Path>,
    (handlers, handler_count): (*const tlsplex_handler, usize),
    (error, error_len): (*mut c_char, usize),
    out: *mut *mut tlsplex_engine,
) -> Result<(), tlsplex_result> {
    if out.is_null() {
        return Err(TLSPLEX_NULL_ARGUMENT);
    }
    // SAFETY: the caller promises `handler_count` handlers (or null and 0).
    let handlers = unsafe { named(handlers, handler_count) }?;
    let result = config
        .map_err(|e| (TLSPLEX_BAD_CONFIG, e.to_string()))
        .and_then(|config| start(config, path, handlers));
    match result {
        // SAFETY: not null (checked above), valid for a write as the caller promises.
        Ok(engine) => unsafe { put(out, engines().add(engine)) },
        Err((result, message)) => {
            // SAFETY: the caller promises `error` is null or valid for `error_len` bytes.
            unsafe { tell(error, error_len, &message) };
            Err(result)
        }
    }
}

/// Starts everything the TOML config file at `config_path` asks for, all or nothing: every
/// address is bound before anything serves. `handlers` (`handler_count` of them; null and 0 for
/// none) are the functions the config's `external` handlers name. On `TLSPLEX_BAD_CONFIG`
/// (every problem, each named with its server and key) and `TLSPLEX_BIND_FAILED` (an address
/// that is taken…) the reason is written into `error` (`error_len` bytes at most,
/// NUL-terminated; null for none).
///
/// # Safety
/// `config_path` must be null or a NUL-terminated string, `handlers` null or valid for reads of
/// `handler_count` handlers, `error` null or valid for writes of `error_len` bytes, `out` valid
/// for a write of a pointer.
#[no_mangle]
pub unsafe extern "C" fn tlsplex_engine_start(
    config_path: *const c_char,
    handlers: *const tlsplex_handler,
    handler_count: usize,
    error: *mut c_char,
    error_len: usize,
    out: *mut *mut tlsplex_engine,
) -> tlsplex_result {
    guard(|| {
        // SAFETY: the caller promises a NUL-terminated string (or null, refused).
        let path = Path::new(unsafe { text(config_path) }?);
        // SAFETY: the caller's promises, passed on.
        unsafe {
            start_from(
                Config::load(path),
                Some(path),
                (handlers, handler_count),
                (error, error_len),
                out,
            )
        }
    })
}

/// As `tlsplex_engine_start`, from the text of a TOML config (relative paths in it resolve
/// against `base_dir`). There is no file to reload: `tlsplex_engine_reload` says so.
///
/// # Safety
/// `toml` and `base_dir` must be null or NUL-terminated strings; `handlers`, `error` and `out`
/// as for `tlsplex_engine_start`.
#[no_mangle]
pub unsafe extern "C" fn tlsplex_engine_start_toml(
    toml: *const c_char,
    base_dir: *const c_char,
    handlers: *const tlsplex_handler,
    handler_count: usize,
    error: *mut c_char,
    error_len: usize,
    out: *mut *mut tlsplex_engine,
) -> tlsplex_result {
    guard(|| {
        // SAFETY: the caller promises NUL-terminated strings (or null, refused).
        let (toml, base) = unsafe { (text(toml)?, text(base_dir)?) };
        let config = Config::parse(toml, Path::new("<toml>"), Path::new(base));
        // SAFETY: the caller's promises, passed on.
        unsafe {
            start_from(
                config,
                None,
                (handlers, handler_count),
                (error, error_len),
                out,
            )
        }
    })
}

/// `request`'s answer from the running engine's controller, waited for here.
fn running<F, T>(
    engine: *mut tlsplex_engine,
    request: impl FnOnce(Controller) -> F,
) -> Result<T, tlsplex_result>
where
    F: std::future::Future<Output = T>,
{
    let engine = engines().get(engine)?;
    let running = engine
        .running
        .lock()
        .unwrap_or_else(PoisonError::into_inner);
    let (runtime, daemon) = running.as_ref().ok_or(TLSPLEX_CLOSED)?;
    Ok(runtime.block_on(request(daemon.controller().clone())))
}

/// Reads the config file again and applies the difference (servers added, removed, moved,
/// updated; nothing lost). A config with problems changes nothing: `TLSPLEX_BAD_CONFIG`, the
/// problems in `error`.
///
/// # Safety
/// `error` must be null or valid for writes of `error_len` bytes.
#[no_mangle]
pub unsafe extern "C" fn tlsplex_engine_reload(
    engine: *mut tlsplex_engine,
    error: *mut c_char,
    error_len: usize,
) -> tlsplex_result {
    guard(|| {
        let reloaded = running(
            engine,
            |c| async move { c.reload(ReloadCause::Signal).await },
        )?;
        reloaded.map(drop).map_err(|e| {
            // SAFETY: the caller promises `error` is null or valid for `error_len` bytes.
            unsafe { tell(error, error_len, &e.to_string()) };
            match e {
                ControlError::Server(_) => TLSPLEX_BIND_FAILED,
                _ => TLSPLEX_BAD_CONFIG,
            }
        })
    })
}

/// Stops the server called `name`: it no longer accepts, its connections drain. It can be
/// started again by a reload that still names it.
///
/// # Safety
/// `name` must be null or a NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn tlsplex_engine_stop_server(
    engine: *mut tlsplex_engine,
    name: *const c_char,
) -> tlsplex_result {
    guard(|| {
        // SAFETY: the caller promises a NUL-terminated string (or null, refused).
        let name = unsafe { text(name) }?;
        running(engine, |c| async move { c.stop(name).await })?.map_err(|e| match e {
            ControlError::NotRunning(_) | ControlError::Stopped(_) => TLSPLEX_UNKNOWN_SERVER,
            _ => TLSPLEX_IO_ERROR,
        })
    })
}

/// Drains and stops everything (for up to the config's `shutdown_grace`), then frees the
/// engine. Null is ignored.
///
/// # Safety
/// None beyond C's: `engine` is a name, never followed.
#[no_mangle]
pub unsafe extern "C" fn tlsplex_engine_free(engine: *mut tlsplex_engine) -> tlsplex_result {
    guard(|| {
        if engine.is_null() {
            return Ok(());
        }
        let engine = engines().remove(engine)?;
        let running = engine
            .running
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some((runtime, daemon)) = running {
            runtime.block_on(daemon.shutdown());
            runtime.shutdown_timeout(THREADS_GRACE);
        }
        Ok(())
    })
}
