// Ink keeps a cache of every text it measures and wraps; unpatched, it grows with every distinct
// string ever drawn (ink#986), so a dashboard left open for weeks, whose ages and figures change
// every frame, grows without end. labrig's patch (patches/ink@6.8.0.patch) bounds both caches.
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { pathToFileURL } from "node:url";
import { Box, Text } from "ink";
import { render } from "ink-testing-library";
import { describe, expect, it } from "vitest";

/** The cache sizes from the very modules Ink renders with (the patch exports them). */
async function inkCacheSizes(): Promise<{ measure: number; wrap: number }> {
  const build = dirname(createRequire(import.meta.url).resolve("ink"));
  const measure = (await import(pathToFileURL(join(build, "measure-text.js")).href)) as { measureCacheSize?: () => number };
  const wrap = (await import(pathToFileURL(join(build, "wrap-text.js")).href)) as { wrapCacheSize?: () => number };
  if (!measure.measureCacheSize || !wrap.wrapCacheSize) throw new Error("Ink is not patched: run pnpm install (patches/ink@6.8.0.patch)");
  return { measure: measure.measureCacheSize(), wrap: wrap.wrapCacheSize() };
}

function Row({ n }: { n: number }) {
  return (
    <Box width={12} flexDirection="column">
      <Text>{`seen ${n}s`}</Text>
      <Text wrap="truncate-end">{`a row too wide for its box, frame ${n}`}</Text>
    </Box>
  );
}

describe("Ink's text caches", () => {
  it("stay bounded while 10,000 frames of changing text are drawn", async () => {
    const view = render(<Row n={0} />);
    for (let n = 1; n <= 10_000; n++) view.rerender(<Row n={n} />);
    expect(view.lastFrame()).toContain("seen 10000s");
    const sizes = await inkCacheSizes();
    // Unbounded, each holds over 10,000 strings by now.
    expect(sizes.measure).toBeGreaterThan(0);
    expect(sizes.measure).toBeLessThanOrEqual(4000);
    expect(sizes.wrap).toBeGreaterThan(0);
    expect(sizes.wrap).toBeLessThanOrEqual(4000);
    view.unmount();
  });
});
