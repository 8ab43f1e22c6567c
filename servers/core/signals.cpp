#include "signals.hpp"

#include <sys/signalfd.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>

namespace sb {

SignalFd::SignalFd(std::initializer_list<int> extra_signals) {
    std::signal(SIGPIPE, SIG_IGN);
    sigset_t mask;
    sigemptyset(&mask);
    sigaddset(&mask, SIGINT);
    sigaddset(&mask, SIGTERM);
    for (int s : extra_signals) sigaddset(&mask, s);
    if (pthread_sigmask(SIG_BLOCK, &mask, nullptr) != 0) {
        std::perror("pthread_sigmask");
        std::exit(1);
    }
    fd_.reset(::signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC));
    if (!fd_) {
        std::perror("signalfd");
        std::exit(1);
    }
}

int SignalFd::take() {
    signalfd_siginfo info;
    if (::read(fd_.get(), &info, sizeof info) != static_cast<ssize_t>(sizeof info)) return 0;
    int signo = static_cast<int>(info.ssi_signo);
    if (signo == SIGINT || signo == SIGTERM) stop_seen_ = true;
    return signo;
}

bool SignalFd::stop_requested() {
    while (take() != 0) {
    }
    return stop_seen_;
}

void reset_signals_for_child() {
    std::signal(SIGINT, SIG_DFL);
    std::signal(SIGTERM, SIG_DFL);
    std::signal(SIGCHLD, SIG_DFL);
    sigset_t empty;
    sigemptyset(&empty);
    pthread_sigmask(SIG_SETMASK, &empty, nullptr);
}

}  // namespace sb
