"""cc_grpc_proto: runs Debian's protoc (+ grpc_cpp_plugin) on local .proto files and wraps the result in a cc_library.

Native proto_library would need a com_google_protobuf repository; a genrule needs nothing but /usr/bin.
"""

def cc_grpc_proto(name, srcs, grpc = False, deps = [], visibility = None):
    """Generates <name> (cc_library) from srcs. grpc=True also generates service stubs (.grpc.pb.*)."""
    outs_h = []
    outs_cc = []
    for s in srcs:
        base = s[:-len(".proto")]
        outs_h.append(base + ".pb.h")
        outs_cc.append(base + ".pb.cc")
        if grpc:
            outs_h.append(base + ".grpc.pb.h")
            outs_cc.append(base + ".grpc.pb.cc")
    pkg = native.package_name()
    grpc_flags = ""
    if grpc:
        grpc_flags = "--grpc_out=$(GENDIR) --plugin=protoc-gen-grpc=/usr/bin/grpc_cpp_plugin"
    native.genrule(
        name = name + "_gen",
        srcs = srcs,
        outs = outs_h + outs_cc,
        cmd = "/usr/bin/protoc -I. -I/usr/include --cpp_out=$(GENDIR) %s $(SRCS)" % grpc_flags,
        message = "protoc " + pkg,
    )
    native.cc_library(
        name = name,
        srcs = outs_cc,
        hdrs = outs_h,
        deps = deps + ["//third_party:protobuf"] + (["//third_party:grpc"] if grpc else []),
        visibility = visibility,
    )
