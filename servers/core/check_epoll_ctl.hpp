#pragma once
// What an epoll_ctl's failure means, decided in one place and checked in every build. The models
// make their epoll_ctl calls themselves, where the reader sees them, and hand the result here:
//
//   if (!sb::check_epoll_ctl(::epoll_ctl(epoll_fd, EPOLL_CTL_ADD, fd, &ev), model)) ...close fd
//
// (For the server's own descriptors, which it cannot run without, any failure is a start-up
// failure instead: `if (::epoll_ctl(...) != 0) sb::die(model, "epoll_ctl")`.)

#include "options.hpp"

namespace sb {

// rc is an epoll_ctl's return value, with its errno. True: done. False: the kernel had no room for
// the connection (ENOMEM, or ENOSPC past fs.epoll.max_user_watches), a shortage the server survives:
// the caller closes that connection and counts it as refused for lack of resources. Any other
// failure (EBADF, EEXIST, ENOENT, EINVAL, ...) means the server's own bookkeeping is wrong: it is
// reported on stderr and the server aborts.
bool check_epoll_ctl(int rc, const ModelInfo& model);

}  // namespace sb
