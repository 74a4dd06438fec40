{
  "targets": [
    {
      "target_name": "mipsec",
      "sources": [
        "native/engine/addon.cc",
        "native/engine/engine.cc",
        "native/engine/crypto_exports.cc",
        "native/io/binding.cc",
        "native/io/loop.cc",
        "native/io/netns.cc",
        "native/io/raw.cc",
        "native/io/tun.cc",
        "native/io/udp.cc",
        "<!@(cat native/datapath.sources)"
      ],
      "include_dirs": [
        "<!(node -p \"require('node-addon-api').include_dir\")",
        "native"
      ],
      "defines": [
        "NAPI_VERSION=8",
        "NODE_ADDON_API_DISABLE_DEPRECATED"
      ],
      "cflags!": ["-fno-exceptions"],
      "cflags_cc!": ["-fno-exceptions", "-std=gnu++17"],
      "cflags_cc": ["-std=c++17", "-O3", "-fvisibility=hidden", "-Wall", "-Wextra", "-Wno-unused-parameter"],
      "conditions": [
        ["OS=='linux'", {
          "ldflags": ["-Wl,-z,now", "-pthread"]
        }]
      ]
    }
  ]
}
