{
  "targets": [
    {
      "target_name": "dmacopy",
      "dependencies": ["<!(node -p \"require('node-addon-api').targets\"):node_addon_api_except"],
      "defines": [
        "NAPI_VERSION=8",
        "NODE_ADDON_API_DISABLE_DEPRECATED",
        "NODE_API_SWALLOW_UNTHROWABLE_EXCEPTIONS"
      ],
      "include_dirs": ["native/core"],
      "cflags_cc": ["-std=c++17", "-fvisibility=hidden", "-Wall", "-Wextra", "-Wno-unused-parameter"],
      "cflags_cc!": ["-std=gnu++17", "-std=gnu++1y", "-fno-exceptions"],
      "ldflags": ["-pthread", "-Wl,-z,nodelete"],
      "conditions": [
        ["OS=='linux' and target_arch=='x64'", {
          "sources": [
            "<!@(node -p \"require('fs').readdirSync('native/core').filter(f => f.endsWith('.cc')).map(f => 'native/core/' + f).join(' ')\")",
            "native/addon/addon.cc",
            "native/addon/args.cc",
            "native/addon/diagnostic_hooks.cc",
            "native/addon/errors.cc",
            "native/addon/event_channel.cc",
            "native/addon/engine_handle.cc",
            "native/addon/queue_opener.cc"
          ]
        }, {
          "sources": ["native/addon/unsupported.cc"]
        }]
      ],
      "configurations": {
        "Release": {
          "cflags_cc": ["-O3"],
          "cflags_cc!": ["-O2"],
          "defines": ["NDEBUG"]
        },
        "Debug": {
          "cflags_cc": ["-O0", "-g"]
        }
      }
    }
  ]
}
