// libleakshim.so: an LD_PRELOAD interposer that makes any dynamically linked server leak on purpose,
// so that a soak test's leak verdict can be checked against a leak the server's own code does not
// carry. Configured only by the environment, read once when the library is loaded:
//
//   LEAKSHIM_FD_EVERY=N     every Nth successful accept()/accept4() of the process opens /dev/null
//                           once more and never closes it; the accepted connection is untouched.
//   LEAKSHIM_KIB_PER_MIN=K  a background thread mallocs and writes K KiB per minute, a step each
//                           second (the steps add up to exactly K KiB per 60 s), never freed.
//   LEAKSHIM_LOG=1          one line on stderr at load saying what the process will leak.
//
// With neither of the first two set the shim is a pure pass-through: no thread, no descriptor.
// For example (the build puts the library in its lib/ directory):
//
//   LD_PRELOAD=build/lib/libleakshim.so LEAKSHIM_FD_EVERY=100 build/bin/server-epoll --port 0
//
// Processes: counters and threads are per process. A forked child starts with its parent's count
// (and descriptors) and counts its own accepts from there; it has no memory thread, as threads do
// not survive fork(), so only the process that loaded the shim (a master, or a single-process
// server) leaks memory; a server that daemonizes by forking loses it too. Every program exec'd
// with LD_PRELOAD still set loads the shim anew and leaks on its own account. Accepts that do not
// go through libc's accept()/accept4() (io_uring, a raw syscall) are not counted.

#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define EXPORT __attribute__((visibility("default")))

// __typeof__ keeps glibc's exact prototypes (a transparent-union address argument under
// _GNU_SOURCE), so the wrappers below are definitions of the very functions the headers declare.
typedef __typeof__(accept) accept_fn;
typedef __typeof__(accept4) accept4_fn;

static pthread_once_t setup_once = PTHREAD_ONCE_INIT;
static accept_fn* real_accept;
static accept4_fn* real_accept4;
static unsigned long long fd_every;     // 0: no descriptor leak
static unsigned long long kib_per_min;  // 0: no memory leak
static atomic_ullong accepted;

// A block of leaked memory; each points to the one before, and the newest is in a volatile, so
// that the compiler can neither drop the allocations nor the writes that make them resident.
struct block {
    struct block* previous;
};
static struct block* volatile newest_block;

static void* next_symbol(const char* name) {
    void* symbol = dlsym(RTLD_NEXT, name);
    if (symbol == NULL) {
        fprintf(stderr, "leakshim: dlsym(RTLD_NEXT, \"%s\"): %s\n", name, dlerror());
        abort();  // without the real function every accept would fail: better to stop loudly
    }
    return symbol;
}

// A positive decimal integer, or 0 (off) for unset; anything else is reported and ignored rather
// than guessed at, so that a typo cannot silently change what is leaked.
static unsigned long long read_count(const char* variable) {
    const char* text = getenv(variable);
    if (text == NULL || *text == '\0') return 0;
    char* end = NULL;
    errno = 0;
    unsigned long long value = strtoull(text, &end, 10);
    if (*text < '0' || *text > '9' || *end != '\0' || errno != 0 || value == 0) {
        fprintf(stderr, "leakshim: ignoring %s=%s (not a positive integer)\n", variable, text);
        return 0;
    }
    return value;
}

static void* leak_memory(void* unused) {
    (void)unused;
    // Bytes due after s seconds are floor(per_minute * s / 60), split so that it cannot overflow:
    // the steps then add up to exactly K KiB every minute, whatever K's remainder by 60.
    const unsigned long long per_minute = kib_per_min * 1024ULL;
    const unsigned long long whole = per_minute / 60, rest = per_minute % 60;
    unsigned long long leaked = 0;
    struct timespec tick;
    clock_gettime(CLOCK_MONOTONIC, &tick);
    for (unsigned long long second = 1;; ++second) {
        // Absolute deadlines: a late wake-up catches up instead of slowing the rate down.
        tick.tv_sec += 1;
        while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &tick, NULL) == EINTR) {
        }
        const unsigned long long due = whole * second + rest * second / 60;
        const size_t step = (size_t)(due - leaked);
        if (step < sizeof(struct block)) continue;  // too small to chain: left for the next step
        struct block* b = malloc(step);
        if (b == NULL) continue;  // the process is out of memory: the leak has made its point
        // Not zero: GCC may turn malloc + memset(0) into calloc, which leaves fresh pages untouched.
        memset(b, 0xa5, step);
        b->previous = newest_block;
        newest_block = b;
        leaked = due;
    }
    return NULL;
}

static void start_memory_thread(void) {
    // All signals blocked in the thread: a server that blocks SIGTERM in its threads and reads it
    // from a signalfd or sigwait() must still get it there, not have it delivered to this thread
    // and kill the process with the default action. The thread is detached and never joined; it
    // dies with the process when the process exits (it holds no lock of ours across a fork).
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    pthread_attr_setstacksize(&attr, 128 * 1024);
    pthread_t thread;
    const int error = pthread_create(&thread, &attr, leak_memory, NULL);
    pthread_attr_destroy(&attr);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (error != 0) {
        fprintf(stderr, "leakshim: no memory-leaking thread: %s\n", strerror(error));
        return;
    }
    // Named here rather than by the thread itself, so that the name is there before main() runs:
    // whoever counts the server's threads can tell this one from the server's own. (The thread
    // never returns, so its handle is still valid here although it is detached.)
    pthread_setname_np(thread, "leakshim");
}

static void setup(void) {
    // memcpy, not a cast: ISO C has no conversion between object and function pointers.
    _Static_assert(sizeof(void*) == sizeof(accept_fn*), "dlsym's pointer must fit a function pointer");
    void* symbol = next_symbol("accept");
    memcpy(&real_accept, &symbol, sizeof symbol);
    symbol = next_symbol("accept4");
    memcpy(&real_accept4, &symbol, sizeof symbol);

    fd_every = read_count("LEAKSHIM_FD_EVERY");
    kib_per_min = read_count("LEAKSHIM_KIB_PER_MIN");
    const char* log = getenv("LEAKSHIM_LOG");
    if (log != NULL && strcmp(log, "1") == 0)
        fprintf(stderr, "leakshim: pid %d: descriptor every %llu accepts (0 = none), %llu KiB/min of memory\n",
                (int)getpid(), fd_every, kib_per_min);
    if (kib_per_min != 0) start_memory_thread();
}

// Runs at load, before main(): the memory thread starts with the process. The wrappers also call
// setup through the same once, in case another library's constructor accepts before this one runs.
__attribute__((constructor)) static void load(void) {
    pthread_once(&setup_once, setup);
}

static void count_accept(void) {
    if (fd_every == 0) return;
    const unsigned long long n = atomic_fetch_add_explicit(&accepted, 1, memory_order_relaxed) + 1;
    if (n % fd_every != 0) return;
    const int saved = errno;  // the caller sees the accept's errno, not ours
    // O_CLOEXEC: programs the server execs do not inherit it, so only this process's count grows.
    (void)open("/dev/null", O_RDONLY | O_CLOEXEC);  // never closed: this is the leak
    errno = saved;
}

EXPORT int accept(int fd, __SOCKADDR_ARG address, socklen_t* restrict length) {
    pthread_once(&setup_once, setup);
    const int connection = real_accept(fd, address, length);
    if (connection >= 0) count_accept();
    return connection;
}

EXPORT int accept4(int fd, __SOCKADDR_ARG address, socklen_t* restrict length, int flags) {
    pthread_once(&setup_once, setup);
    const int connection = real_accept4(fd, address, length, flags);
    if (connection >= 0) count_accept();
    return connection;
}
