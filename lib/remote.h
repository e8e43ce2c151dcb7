/* A card on another host, reached through p11-kit's RPC: `p11-kit server` on
 * the card host (in front of the guard module), p11-kit-client.so as the
 * keystore module here. The client finds the server through the environment
 * variable P11_KIT_SERVER_ADDRESS ("unix:path=SOCKET"), which knotd gets from
 * its systemd unit: Knot's keystore config cannot carry it. */
#pragma once

#include <stdbool.h>

/** Name of the environment variable p11-kit-client.so reads. */
#define KHSM_REMOTE_ENV "P11_KIT_SERVER_ADDRESS"

/** Full path of p11-kit-client.so on this system (static string). */
const char *khsm_remote_client_module(void);

/** Whether a keystore module is p11-kit's client (by its file name). */
bool khsm_remote_is_client(const char *module_path);

/** The server address for a socket: "unix:path=" and the absolute socket
 *  path, percent-encoded outside [A-Za-z0-9/._~-] as `p11-kit server` prints it.
 *  KHSM_EINVAL when socket is not absolute.
 *  \param[out] address_ptr  free(). */
int khsm_remote_address(const char *socket, char **address_ptr);

/** Point p11-kit-client.so of this process (and the keymgr it runs) at
 *  socket: sets P11_KIT_SERVER_ADDRESS. Call before any module is loaded. */
int khsm_remote_use(const char *socket);

/** The socket the client will use: from P11_KIT_SERVER_ADDRESS, else
 *  p11-kit's default $XDG_RUNTIME_DIR/p11-kit/pkcs11. KHSM_ECONFIG with the
 *  remedy when neither is set or the address is not a unix socket.
 *  \param[out] socket_ptr  free(). */
int khsm_remote_socket(char **socket_ptr);

/** Whether a p11-kit server answers on the client's socket: a connect(),
 *  no PKCS #11 call. KHSM_EREMOVED with a detail naming the socket and the
 *  remedy (server on the card host, ssh forward here) when nothing does.
 *  \param[out] socket_ptr  the socket checked, free(); NULL accepted. */
int khsm_remote_check(char **socket_ptr);
