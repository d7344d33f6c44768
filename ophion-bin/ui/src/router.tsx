// A small router on the History API: the path picks the page, the query
// string holds its state (so a URL can be shared).
import { useEffect, useState, type AnchorHTMLAttributes, type MouseEvent } from "react";

function current() {
  return { path: window.location.pathname, params: new URLSearchParams(window.location.search) };
}

export function navigate(to: string, replace = false) {
  if (to === window.location.pathname + window.location.search) return;
  if (replace) window.history.replaceState(null, "", to);
  else window.history.pushState(null, "", to);
  window.dispatchEvent(new Event("ophion-route"));
}

export function useRoute() {
  const [r, setR] = useState(current);
  useEffect(() => {
    const on = () => setR(current());
    window.addEventListener("popstate", on);
    window.addEventListener("ophion-route", on);
    return () => {
      window.removeEventListener("popstate", on);
      window.removeEventListener("ophion-route", on);
    };
  }, []);
  return r;
}

/** Sets (or with `undefined`, removes) query parameters of the current URL. */
export function setParams(changes: Record<string, string | undefined>, replace = true) {
  const p = new URLSearchParams(window.location.search);
  for (const [k, v] of Object.entries(changes)) {
    if (v === undefined || v === "") p.delete(k);
    else p.set(k, v);
  }
  const qs = p.toString();
  navigate(window.location.pathname + (qs ? `?${qs}` : ""), replace);
}

export function Link({ to, onClick, ...rest }: { to: string } & AnchorHTMLAttributes<HTMLAnchorElement>) {
  const click = (e: MouseEvent<HTMLAnchorElement>) => {
    onClick?.(e);
    if (e.defaultPrevented || e.button !== 0 || e.metaKey || e.ctrlKey || e.shiftKey) return;
    e.preventDefault();
    navigate(to);
  };
  return <a href={to} onClick={click} {...rest} />;
}
