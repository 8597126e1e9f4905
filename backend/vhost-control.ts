// The control socket's vhost-user commands (docs/operations.md): ports added
// and removed at run time, with the same parsing and the same errors as the
// --vhost-user option.
//   {"cmd":"vhost-user-add","spec":"PATH[,client][,mac=MAC]"} → {"added": PATH, "client": bool, "mac": MAC|null}
//   {"cmd":"vhost-user-remove","path":PATH}                  → {"removed": PATH}
//   {"cmd":"vhost-user"}                                      → [{"path", "client", "mac"}] the open ports
import { ControlError, ControlServer } from './control';
import type { VhostPorts } from './vhost';
import { parseVhostUserSpec } from './vhost-options';

function text(req: Record<string, unknown>, key: string): string {
  const v = req[key];
  if (typeof v !== 'string' || v === '' || v.length > 256) throw new ControlError('EINVAL', `"${key}" must be a string (up to 256 characters).`);
  return v;
}

/** An Error's one sentence, ending with one full stop. */
function sentence(err: unknown): string {
  const m = err instanceof Error ? err.message : String(err);
  return `${m.charAt(0).toUpperCase()}${m.slice(1).replace(/\.$/, '')}.`;
}

export function registerVhostCommands(server: ControlServer, ports: VhostPorts): void {
  server
    .command('vhost-user', () => ports.specs().map((s) => ({ path: s.path, client: s.client, mac: s.mac ?? null })))
    .command('vhost-user-add', (req) => {
      let spec;
      try {
        spec = parseVhostUserSpec(text(req, 'spec'));
      } catch (err) {
        if (err instanceof ControlError) throw err;
        throw new ControlError('EINVAL', sentence(err));
      }
      try {
        ports.add(spec);
      } catch (err) {
        // The native port's errors carry their errno name (EADDRINUSE: a live listener; ENOENT: no such directory).
        const code = (err as { code?: string }).code ?? (/exists already/.test(String((err as Error).message)) ? 'EEXIST' : 'EIO');
        throw new ControlError(code, sentence(err));
      }
      return { added: spec.path, client: spec.client, mac: spec.mac ?? null };
    })
    .command('vhost-user-remove', (req) => {
      const path = text(req, 'path');
      if (!ports.remove(path)) {
        throw new ControlError('ENOENT', `No vhost-user port on ${path}: \`xsw-ctl vhost-user\` lists the ports.`);
      }
      return { removed: path };
    });
}
