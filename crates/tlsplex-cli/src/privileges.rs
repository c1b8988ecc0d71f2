//! Dropping root after every socket is bound, as nginx's and HAProxy's `user` settings do.

use nix::unistd::{setgid, setgroups, setuid, Gid, Group, Uid, User};

/// Switches to `user` (and `group`, or the user's primary group). Refuses — rather than running
/// on as root — when the names are unknown or the switch fails.
pub fn drop_to(user: &str, group: Option<&str>) -> Result<(), String> {
    let account = User::from_name(user)
        .map_err(|e| format!("cannot look up user {user:?}: {e}"))?
        .ok_or_else(|| format!("no such user: {user:?}"))?;
    let gid = match group {
        Some(name) => {
            Group::from_name(name)
                .map_err(|e| format!("cannot look up group {name:?}: {e}"))?
                .ok_or_else(|| format!("no such group: {name:?}"))?
                .gid
        }
        None => account.gid,
    };
    // Order matters: supplementary groups and the group first, while we may still change them.
    setgroups(&[gid]).map_err(|e| format!("cannot drop supplementary groups: {e}"))?;
    setgid(gid).map_err(|e| format!("cannot switch to group {gid}: {e}"))?;
    setuid(account.uid).map_err(|e| format!("cannot switch to user {user:?}: {e}"))?;
    if account.uid != Uid::from_raw(0) && (Uid::effective().is_root() || Gid::effective() != gid) {
        return Err("privileges are still held after the switch".to_owned());
    }
    tracing::info!(
        user,
        uid = account.uid.as_raw(),
        gid = gid.as_raw(),
        "dropped privileges"
    );
    Ok(())
}
