// @kubernetes/client-node against the fake API server: an informer (list + watch) sees a pod created after it
// started, and a merge patch on pods/status (the controller's mark) lands and reaches the informer.
// Usage: node client_node_test.js <kubeconfig>; exits non-zero on failure.
const k8s = require('@kubernetes/client-node');

function fail(msg) { console.error('FAIL: ' + msg); process.exit(1); }

async function main() {
  const kc = new k8s.KubeConfig();
  kc.loadFromFile(process.argv[2]);
  const core = kc.makeApiClient(k8s.CoreV1Api);
  const ns = 'team';
  const informer = k8s.makeInformer(kc, `/api/v1/namespaces/${ns}/pods`,
                                    () => core.listNamespacedPod({namespace: ns}));
  const seen = {added: new Set(), annotated: new Set()};
  informer.on('add', (p) => seen.added.add(p.metadata.name));
  informer.on('update', (p) => {
    const a = (p.metadata.annotations || {})['pod-network-controller.istio.io/status'];
    if (a === 'initialized') seen.annotated.add(p.metadata.name);
  });
  let stopping = false;  // stop() aborts the watch request, which the informer reports as an error
  informer.on('error', (e) => { if (!stopping) fail('informer error: ' + e); });
  await informer.start();
  await core.createNamespacedPod({namespace: ns, body: {
    metadata: {name: 'from-node'},
    spec: {containers: [{name: 'app', image: 'busybox'}]},
  }});
  const created = await core.readNamespacedPod({name: 'from-node', namespace: ns});
  await core.patchNamespacedPodStatus({
    name: 'from-node', namespace: ns,
    body: {metadata: {uid: created.metadata.uid,
                      annotations: {'pod-network-controller.istio.io/status': 'initialized'}}},
  }, k8s.setHeaderOptions('Content-Type', k8s.PatchStrategy.MergePatch));
  const deadline = Date.now() + 10000;
  while (Date.now() < deadline && !(seen.added.has('from-node') && seen.annotated.has('from-node'))) {
    await new Promise((r) => setTimeout(r, 100));
  }
  stopping = true;
  await informer.stop();
  if (!seen.added.has('from-node')) fail('informer never saw the pod added');
  if (!seen.annotated.has('from-node')) fail('informer never saw the status patch');
  const got = await core.readNamespacedPod({name: 'from-node', namespace: ns});
  if (got.metadata.annotations['pod-network-controller.istio.io/status'] !== 'initialized') fail('patch lost');
  console.log('client-node: informer + status patch OK');
  process.exit(0);
}
main().catch((e) => fail(e && e.stack ? e.stack : String(e)));
