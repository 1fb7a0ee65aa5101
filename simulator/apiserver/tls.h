// A throwaway certificate for the fake API server: one self-signed ECDSA P-256 certificate that is both the
// CA that clients trust (kubeconfig certificate-authority-data) and the serving certificate (SANs 127.0.0.1,
// ::1, localhost).
#ifndef PNC_SIMULATOR_APISERVER_TLS_H_
#define PNC_SIMULATOR_APISERVER_TLS_H_

#include <string>

#include "absl/status/statusor.h"

namespace pnc::sim {

struct ServingCert {
  std::string cert_pem;  // also the CA bundle
  std::string key_pem;
};

absl::StatusOr<ServingCert> GenerateServingCert();

}  // namespace pnc::sim

#endif  // PNC_SIMULATOR_APISERVER_TLS_H_
