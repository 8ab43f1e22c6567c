#include "check_epoll_ctl.hpp"

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace sb {

bool check_epoll_ctl(int rc, const ModelInfo& model) {
    if (rc == 0) return true;
    if (errno == ENOMEM || errno == ENOSPC) return false;
    std::fprintf(stderr, "server-%s: epoll_ctl: %s (a bug in the server: aborting)\n", model.name,
                 std::strerror(errno));
    std::abort();
}

}  // namespace sb
