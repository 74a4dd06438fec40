{
  "target_defaults": {
    "include_dirs": ["native"],
    "cflags!": ["-fno-exceptions"],
    "cflags_cc!": ["-fno-exceptions", "-std=gnu++17"],
    "cflags_cc": ["-std=c++17", "-O3", "-fPIC", "-fvisibility=hidden", "-Wall", "-Wextra", "-Wno-unused-parameter"]
  },
  "targets": [
    {
      "target_name": "mipsec_core",
      "type": "static_library",
      "sources": [
        "<!@(cat native/datapath.sources)",
        "<!@(cat native/io.sources)"
      ]
    },
    {
      "target_name": "mipsec",
      "dependencies": ["mipsec_core"],
      "sources": [
        "native/node/abi.cc",
        "native/node/addon.cc",
        "native/node/crypto_exports.cc",
        "native/node/engine.cc",
        "native/node/io_loop.cc"
      ],
      "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")"],
      "defines": ["NAPI_VERSION=8", "NODE_ADDON_API_DISABLE_DEPRECATED"],
      "conditions": [
        ["OS=='linux'", {
          "ldflags": ["-Wl,-z,now", "-pthread"]
        }]
      ]
    }
  ]
}
