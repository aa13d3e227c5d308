# shellcheck shell=bash
# ensure_container_account: llem run as root runs its containers as execution.container_user,
# whose default (10001:10001) must be a system account of the host with no login (it reserves the
# uid, so no login created later inherits the folders llem hands to it). As root, make it when
# missing (saying so); others run containers as themselves and need nothing.

ensure_container_account() {
    [ "$(id -u)" = 0 ] || return 0
    getent passwd 10001 >/dev/null && return 0
    echo "==> reserving uid 10001 for llem's experiment containers (system account llem, no login)"
    getent group 10001 >/dev/null || groupadd --system --gid 10001 llem
    useradd --system --no-create-home --shell /usr/sbin/nologin --uid 10001 --gid 10001 llem
}
