#include "simulator/container_mapping.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <set>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "simulator/loopback_port.h"
#include "simulator/pod_shape.h"

namespace pnc::sim {

using nlohmann::json;

namespace {

// $(VAR) -> value, as kubelet expands command and args ($$ escapes, unknown references stay as written).
std::string Expand(const std::string& in, const std::map<std::string, std::string>& env) {
  std::string out;
  for (size_t i = 0; i < in.size(); ++i) {
    if (in[i] == '$' && i + 1 < in.size() && in[i + 1] == '$') {
      out += '$';
      ++i;
      continue;
    }
    if (in[i] == '$' && i + 1 < in.size() && in[i + 1] == '(') {
      size_t close = in.find(')', i + 2);
      if (close != std::string::npos) {
        auto it = env.find(in.substr(i + 2, close - i - 2));
        if (it != env.end()) {
          out += it->second;
          i = close;
          continue;
        }
      }
    }
    out += in[i];
  }
  return out;
}

}  // namespace

absl::StatusOr<MappedContainer> MapContainer(const json& pod_spec, const json& container,
                                             const NodeRuntime& node, const ImageMap& images) {
  std::string image = container.value("image", "");
  auto bin = images.binaries.find(ImageName(image));
  if (bin == images.binaries.end())
    return absl::UnimplementedError(absl::StrCat("image ", image, " is not mapped to a local binary"));

  // Volumes by name, then the container's mounts: what each path inside the container stands for here.
  std::map<std::string, json> volumes;
  for (const auto& v : pod_spec.value("volumes", json::array())) volumes[v.value("name", "")] = v;
  std::map<std::string, std::string> rewrite;  // container path prefix -> host path / endpoint
  std::string socket_mount;
  for (const auto& m : container.value("volumeMounts", json::array())) {
    auto v = volumes.find(m.value("name", ""));
    if (v == volumes.end())
      return absl::InvalidArgumentError(
          absl::StrCat("volumeMount ", m.value("name", ""), ": no such volume"));
    std::string path = m.value("mountPath", "");
    if (v->second.contains("hostPath") && v->second["hostPath"].value("type", "") == "Socket") {
      socket_mount = path;
    } else if (v->second.contains("emptyDir")) {
      std::string dir = absl::StrCat(node.pod_dir, "/", v->first);
      std::error_code ec;
      std::filesystem::create_directories(dir, ec);
      if (ec) return absl::InternalError(absl::StrCat("mkdir ", dir, ": ", ec.message()));
      rewrite[path] = dir;
    }
  }
  auto rewrite_paths = [&](std::string s) {
    if (!socket_mount.empty())
      s = absl::StrReplaceAll(s, {{absl::StrCat("unix://", socket_mount), node.cri_endpoint}});
    for (const auto& [from, to] : rewrite) s = absl::StrReplaceAll(s, {{from, to}});
    return s;
  };

  std::map<std::string, std::string> env;
  for (const auto& e : container.value("env", json::array())) {
    std::string name = e.value("name", "");
    if (e.contains("value")) {
      env[name] = rewrite_paths(Expand(e["value"].get<std::string>(), env));
    } else if (e.contains("valueFrom") && e["valueFrom"].contains("fieldRef")) {
      std::string field = e["valueFrom"]["fieldRef"].value("fieldPath", "");
      if (field == "spec.nodeName")
        env[name] = node.node_name;
      else if (field == "metadata.name")
        env[name] = node.pod_name;
      else if (field == "metadata.namespace")
        env[name] = node.pod_namespace;
      else
        return absl::InvalidArgumentError(absl::StrCat("env ", name, ": fieldRef ", field, " not modelled"));
    } else {
      return absl::InvalidArgumentError(absl::StrCat("env ", name, ": only value and fieldRef are modelled"));
    }
  }

  std::set<int> container_ports;
  for (const auto& p : container.value("ports", json::array()))
    container_ports.insert(p.value("containerPort", 0));

  MappedContainer out;
  std::vector<std::string> argv = {bin->second};
  std::vector<std::string> words;
  const json command = container.value("command", json::array());
  for (size_t i = 1; i < command.size(); ++i) words.push_back(command[i].get<std::string>());
  for (const auto& a : container.value("args", json::array())) words.push_back(a.get<std::string>());
  for (const std::string& w : words) {
    std::string arg = rewrite_paths(Expand(w, env));
    absl::string_view v = arg;
    if (absl::ConsumePrefix(&v, "--metrics_address=")) {
      int port = 0;
      std::vector<std::string> hp = absl::StrSplit(v, absl::MaxSplits(':', 1));
      if (hp.size() == 2 && absl::SimpleAtoi(hp[1], &port) && container_ports.count(port)) {
        auto free = FreeLoopbackPort();
        if (!free.ok()) return free.status();
        out.metrics_port = *free;
        arg = absl::StrCat("--metrics_address=127.0.0.1:", *free);
      }
    }
    argv.push_back(arg);
  }
  std::vector<std::string> envv;
  for (const auto& [k, v] : env) envv.push_back(absl::StrCat(k, "=", v));
  envv.push_back(absl::StrCat("KUBECONFIG=", images.kubeconfig));
  if (const char* path = std::getenv("PATH")) envv.push_back(absl::StrCat("PATH=", path));
  out.spawn.argv = std::move(argv);
  out.spawn.env = std::move(envv);
  return out;
}

}  // namespace pnc::sim
