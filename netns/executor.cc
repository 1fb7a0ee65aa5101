#include "netns/executor.h"

#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <deque>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "netns/errno_status.h"

namespace pnc::netns {
namespace {

// Set on worker threads: a nested RunInNetns from inside fn may start a worker beyond the cap (it would
// otherwise wait for itself when all workers are busy with nested calls).
thread_local bool tls_is_worker = false;

struct Request {
  int fd;
  const std::string* path;
  absl::FunctionRef<absl::Status()> fn;
  absl::Status result;
  bool done = false;
};

// setns() fails with EINVAL/EBADF when the fd is not (or no longer) a network namespace: a broken handle the
// caller must not retry as is, so FailedPrecondition rather than StatusFromErrno's InvalidArgument.
absl::Status SetnsError(int err, const std::string& path) {
  std::string what = absl::StrCat("setns(CLONE_NEWNET) into ", path);
  if (err == EINVAL || err == EBADF)
    return absl::FailedPreconditionError(absl::StrCat(what, ": ", std::strerror(err)));
  return StatusFromErrno(err, what);
}

bool SameNamespace(int fd_a, const char* path_b) {
  struct stat a, b;
  return fstat(fd_a, &a) == 0 && stat(path_b, &b) == 0 && a.st_dev == b.st_dev && a.st_ino == b.st_ino;
}

class Pool {
 public:
  absl::Status Run(const NetnsHandle& ns, absl::FunctionRef<absl::Status()> fn) {
    Request req{ns.fd(), &ns.path(), fn};
    absl::MutexLock lock(&mu_);
    if (home_fd_ < 0) {
      home_fd_ = ::open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
      if (home_fd_ < 0) {
        return absl::InternalError(absl::StrCat("open /proc/thread-self/ns/net: ", std::strerror(errno)));
      }
    }
    queue_.push_back(&req);
    if (static_cast<int>(queue_.size()) > idle_ && (workers_ < kMaxNetnsWorkers || tls_is_worker)) {
      if (absl::Status s = SpawnLocked(); !s.ok()) {
        if (workers_ == 0) {  // nobody will ever serve the request
          std::erase(queue_, &req);
          return s;
        }
      }
    }
    mu_.Await(absl::Condition(&req.done));
    return std::move(req.result);
  }

 private:
  // Every worker is started by the spawner thread, which never leaves the home namespace: a thread inherits
  // its creator's namespace, and a creator inside a pod namespace (a nested call, or a worker being discarded
  // because it cannot return home) would hand that namespace down to a worker that may not be able to leave
  // it either.
  absl::Status SpawnLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (!spawner_started_) {
      if (absl::Status s = StartThreadLocked(&Pool::SpawnerTrampoline, "pnc-netns-spawn"); !s.ok()) return s;
      spawner_started_ = true;
    }
    ++workers_;  // counted now so that concurrent callers do not over-spawn
    ++spawn_requests_;
    return absl::OkStatus();
  }

  absl::Status StartThreadLocked(void* (*entry)(void*), const char* name) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    pthread_t tid;
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    pthread_attr_setstacksize(&attr, 2 << 20);  // generous: fn is arbitrary code (libiptc, netlink, exec)
    int err = pthread_create(&tid, &attr, entry, this);
    pthread_attr_destroy(&attr);
    if (err != 0) return absl::ResourceExhaustedError(absl::StrCat("start ", name, ": ", std::strerror(err)));
    pthread_setname_np(tid, name);
    return absl::OkStatus();
  }

  static void* Trampoline(void* self) {
    static_cast<Pool*>(self)->WorkerMain();
    return nullptr;
  }

  static void* SpawnerTrampoline(void* self) {
    static_cast<Pool*>(self)->SpawnerMain();
    return nullptr;
  }

  void SpawnerMain() {
    absl::MutexLock lock(&mu_);
    for (;;) {
      mu_.Await(absl::Condition(this, &Pool::HasSpawnRequest));
      --spawn_requests_;
      if (absl::Status s = StartThreadLocked(&Pool::Trampoline, "pnc-netns"); !s.ok()) {
        --workers_;
        if (!queue_.empty()) {  // nobody else may ever serve the oldest request: fail it rather than hang
          Request* req = queue_.front();
          queue_.pop_front();
          req->result = s;
          req->done = true;
        }
      }
    }
  }

  // Fails one queued request and retires this (not yet serving) worker.
  void AbandonStart(const absl::Status& why) {
    absl::MutexLock lock(&mu_);
    --workers_;
    if (!queue_.empty()) {
      Request* req = queue_.front();
      queue_.pop_front();
      req->result = why;
      req->done = true;
    }
  }

  void WorkerMain() {
    tls_is_worker = true;
    // Workers start in the spawner's (home) namespace; checked anyway because serving from anywhere else
    // would be wrong. Skipped when already home so that a process without CAP_SYS_ADMIN gets the real error
    // from entering the target instead.
    if (!SameNamespace(home_fd_, "/proc/thread-self/ns/net") && setns(home_fd_, CLONE_NEWNET) != 0) {
      AbandonStart(absl::InternalError(
          absl::StrCat("netns worker cannot enter home namespace: ", std::strerror(errno))));
      return;
    }
    mu_.Lock();
    for (;;) {
      ++idle_;
      mu_.Await(absl::Condition(this, &Pool::HasWork));
      --idle_;
      Request* req = queue_.front();
      queue_.pop_front();
      mu_.Unlock();

      bool discard = false;
      absl::Status result;
      if (setns(req->fd, CLONE_NEWNET) != 0) {
        result = SetnsError(errno, *req->path);  // still home: setns changes nothing on failure
      } else {
        result = req->fn();
        if (setns(home_fd_, CLONE_NEWNET) != 0) {
          // This thread is stuck in the pod's namespace: never let it serve anything again.
          std::fprintf(stderr,
                       "pnc netns worker: cannot return to home namespace after %s: %s; discarding thread\n",
                       req->path->c_str(), std::strerror(errno));
          discard = true;
        }
      }

      mu_.Lock();
      req->result = std::move(result);
      req->done = true;  // req may be gone as soon as mu_ is released
      if (discard) {
        --workers_;
        // Whoever is queued behind us still needs a worker; a new one goes home before serving.
        if (static_cast<int>(queue_.size()) > idle_) (void)SpawnLocked();
        mu_.Unlock();
        return;
      }
    }
  }

  bool HasWork() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return !queue_.empty(); }
  bool HasSpawnRequest() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return spawn_requests_ > 0; }

  absl::Mutex mu_;
  std::deque<Request*> queue_ ABSL_GUARDED_BY(mu_);
  int workers_ ABSL_GUARDED_BY(mu_) = 0;
  int idle_ ABSL_GUARDED_BY(mu_) = 0;
  int spawn_requests_ ABSL_GUARDED_BY(mu_) = 0;
  bool spawner_started_ ABSL_GUARDED_BY(mu_) = false;
  int home_fd_ = -1;  // written once under mu_ before the first worker starts; read-only afterwards
};

Pool& GlobalPool() {
  static Pool* pool = new Pool();  // never destroyed: detached workers reference it until process exit
  return *pool;
}

}  // namespace

absl::Status RunInNetns(const NetnsHandle& ns, absl::FunctionRef<absl::Status()> fn) {
  if (ns.fd() < 0) {
    return absl::FailedPreconditionError(
        absl::StrCat("cannot enter ", ns.path(), ": handle has no namespace fd (a ForTesting handle?)"));
  }
  return GlobalPool().Run(ns, fn);
}

}  // namespace pnc::netns
