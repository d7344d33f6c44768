import { defineConfig } from "vite";
import react from "@vitejs/plugin-react";

// The build goes where ophion-bin/build.rs asks (OPHION_UI_OUT), else dist/.
export default defineConfig({
  plugins: [react()],
  base: "/",
  build: {
    outDir: process.env.OPHION_UI_OUT ?? "dist",
    emptyOutDir: true,
    target: "es2022",
    sourcemap: false,
    // Pages load on demand; the first screen needs React, the router and
    // the shell only.
    chunkSizeWarningLimit: 400,
  },
});
