"""cc_grpc_proto: runs Debian's protoc (+ grpc_cpp_plugin) on local .proto files and wraps the result in a cc_library.

Native proto_library would need a com_google_protobuf repository; a genrule needs nothing but /usr/bin.
"""

def cc_grpc_proto(name, srcs, grpc = False, lite = False, deps = [], visibility = None):
    """Generates <name> (cc_library of the messages) from srcs.

    grpc=True also generates the service stubs (.grpc.pb.*) as a separate library, <name>_grpc, so code that only
    needs the messages does not link gRPC. lite=True links libprotobuf-lite instead of libprotobuf (the .proto must
    say `option optimize_for = LITE_RUNTIME;`).
    """
    outs_h = []
    outs_cc = []
    grpc_h = []
    grpc_cc = []
    for s in srcs:
        base = s[:-len(".proto")]
        outs_h.append(base + ".pb.h")
        outs_cc.append(base + ".pb.cc")
        if grpc:
            grpc_h.append(base + ".grpc.pb.h")
            grpc_cc.append(base + ".grpc.pb.cc")
    pkg = native.package_name()
    grpc_flags = ""
    if grpc:
        grpc_flags = "--grpc_out=$(GENDIR) --plugin=protoc-gen-grpc=/usr/bin/grpc_cpp_plugin"
    native.genrule(
        name = name + "_gen",
        srcs = srcs,
        outs = outs_h + outs_cc + grpc_h + grpc_cc,
        cmd = "/usr/bin/protoc -I. -I/usr/include --cpp_out=$(GENDIR) %s $(SRCS)" % grpc_flags,
        message = "protoc " + pkg,
    )
    native.cc_library(
        name = name,
        srcs = outs_cc,
        hdrs = outs_h,
        deps = deps + ["//third_party:protobuf_lite" if lite else "//third_party:protobuf"],
        visibility = visibility,
    )
    if grpc:
        native.cc_library(
            name = name + "_grpc",
            srcs = grpc_cc,
            hdrs = grpc_h,
            deps = [":" + name, "//third_party:grpc"],
            visibility = visibility,
        )
