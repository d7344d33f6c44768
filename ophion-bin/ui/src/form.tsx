// A search form whose fields live in the URL: `q` is what the URL says
// (what the page queries), `form` what is being typed until submitted.
import { useState, type FormEvent } from "react";
import { setParams, useRoute } from "./router";

export function useUrlForm<K extends string>(fields: readonly K[], onSubmit?: () => void) {
  const { params } = useRoute();
  const q = Object.fromEntries(fields.map((k) => [k, params.get(k) ?? ""])) as Record<K, string>;
  const [form, setForm] = useState(q);
  const submit = (e: FormEvent) => {
    e.preventDefault();
    onSubmit?.();
    setParams(Object.fromEntries(fields.map((k) => [k, form[k] || undefined])), false);
  };
  const input = (k: K, label: string, placeholder = "") => (
    <label>
      {label}
      <input name={k} value={form[k]} placeholder={placeholder} onChange={(e) => setForm({ ...form, [k]: e.target.value })} />
    </label>
  );
  return { q, form, setForm, submit, input };
}
