#include "simulator/apiserver/test_client.h"

#include <curl/curl.h>

namespace pnc::sim::testing {
namespace {

size_t Append(char* p, size_t size, size_t n, void* out) {
  static_cast<std::string*>(out)->append(p, size * n);
  return size * n;
}

CURL* Setup(const ClientConfig& cfg, const std::string& path, curl_slist** headers) {
  CURL* c = curl_easy_init();
  curl_easy_setopt(c, CURLOPT_URL, (cfg.base_url + path).c_str());
  curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
  if (!cfg.token.empty())
    *headers = curl_slist_append(*headers, ("Authorization: Bearer " + cfg.token).c_str());
  if (!cfg.ca_pem.empty()) {
    curl_blob blob{const_cast<char*>(cfg.ca_pem.data()), cfg.ca_pem.size(), CURL_BLOB_COPY};
    curl_easy_setopt(c, CURLOPT_CAINFO_BLOB, &blob);
  }
  return c;
}

}  // namespace

HttpResult Request(const ClientConfig& cfg, const std::string& method, const std::string& path,
                   const std::string& body, const std::string& content_type) {
  HttpResult r;
  curl_slist* headers = nullptr;
  CURL* c = Setup(cfg, path, &headers);
  headers = curl_slist_append(headers, ("Content-Type: " + content_type).c_str());
  curl_easy_setopt(c, CURLOPT_HTTPHEADER, headers);
  curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method.c_str());
  if (!body.empty() || method == "POST" || method == "PUT" || method == "PATCH") {
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, body.c_str());
    curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, static_cast<long>(body.size()));
  }
  curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, Append);
  curl_easy_setopt(c, CURLOPT_WRITEDATA, &r.body);
  curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, Append);
  curl_easy_setopt(c, CURLOPT_HEADERDATA, &r.headers);
  curl_easy_setopt(c, CURLOPT_TIMEOUT, 10L);
  if (curl_easy_perform(c) == CURLE_OK) curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r.code);
  curl_slist_free_all(headers);
  curl_easy_cleanup(c);
  return r;
}

WatchReader::WatchReader(const ClientConfig& cfg, const std::string& path) {
  thread_ = std::thread([this, cfg, path] {
    curl_slist* headers = nullptr;
    CURL* c = Setup(cfg, path, &headers);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, &WatchReader::OnData);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, this);
    curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(
        c, CURLOPT_XFERINFOFUNCTION, +[](void* self, curl_off_t, curl_off_t, curl_off_t, curl_off_t) -> int {
          return static_cast<WatchReader*>(self)->stop_.load() ? 1 : 0;
        });
    curl_easy_setopt(c, CURLOPT_XFERINFODATA, this);
    curl_easy_perform(c);
    long code = 0;
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code);
    curl_slist_free_all(headers);
    curl_easy_cleanup(c);
    absl::MutexLock l(&mu_);
    code_ = code;
    ended_ = true;
  });
}

WatchReader::~WatchReader() {
  stop_ = true;
  thread_.join();
}

size_t WatchReader::OnData(char* p, size_t size, size_t n, void* self_ptr) {
  auto* self = static_cast<WatchReader*>(self_ptr);
  absl::MutexLock l(&self->mu_);
  self->partial_.append(p, size * n);
  size_t pos;
  while ((pos = self->partial_.find('\n')) != std::string::npos) {
    self->lines_.push_back(self->partial_.substr(0, pos));
    self->partial_.erase(0, pos + 1);
  }
  return size * n;
}

std::optional<nlohmann::json> WatchReader::Next(absl::Duration timeout) {
  absl::MutexLock l(&mu_);
  auto ready = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return next_ < lines_.size() || ended_; };
  mu_.AwaitWithTimeout(absl::Condition(&ready), timeout);
  if (next_ >= lines_.size()) return std::nullopt;
  return nlohmann::json::parse(lines_[next_++], nullptr, false);
}

bool WatchReader::Ended(absl::Duration timeout) {
  absl::MutexLock l(&mu_);
  auto ended = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return ended_; };
  return mu_.AwaitWithTimeout(absl::Condition(&ended), timeout);
}

long WatchReader::code() {
  absl::MutexLock l(&mu_);
  return code_;
}

}  // namespace pnc::sim::testing
