//! gopark's sockets.
